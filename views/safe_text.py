"""The one way customer- or file-provided text reaches the screen: as plain text.

Names, comments, file names, typed signatures, addresses, product and carrier names come from
customers, staff or imported files. Streamlit renders markdown in many places (``st.markdown``,
``st.caption``, ``st.write``, image captions, widget labels, ``help=``, toasts); there such text
could become a link or an image, and a bare ``https://…`` or ``www.…`` is linked even without any
markdown characters. So:

- ``show(text)`` puts the text on the page with Streamlit's plain-text element (``st.text``:
  never markdown or HTML, nothing is linked);
- ``inline(text)`` makes text safe to place *inside* a markdown string that Streamlit renders
  (labels, radio options, ``st.error``): link, image and emphasis characters are escaped and the
  patterns that would be auto-linked (``://``, ``www.``, ``@``) or become Streamlit directives
  (``:red[…]``, ``:material/…:``) are broken by an invisible word joiner;
- ``chart_label(text)`` for a chart's category names (plotly reads ``<a href>``, ``<b>``… in them).
"""
from __future__ import annotations

import html
import re

import streamlit as st


_JOIN = "\u2060"  # WORD JOINER: invisible, and no link pattern matches across it
# Characters that start markdown links, images, emphasis, code, HTML or maths.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!<>~$])")


def show(text: str | None, *, prefix: str = "") -> None:
    """Show ``text`` exactly as typed, as Streamlit's plain-text element: never markdown or HTML,
    nothing linked. ``prefix`` is the app's own words before it (plain too; already translated
    on customer pages)."""
    st.text(prefix + ("" if text is None else str(text)))


def inline(text: str | None) -> str:
    """``text`` made inert inside a markdown string: link, image, emphasis, code, HTML and maths
    characters are escaped, and auto-link patterns (``://``, ``www.``, ``@``) are broken, so it
    shows as typed and never as a link."""
    s = ("" if text is None else str(text)).replace("\n", " ")
    # Streamlit links bare URLs, www. addresses and emails *after* markdown escapes are read
    # (``https\\:\\/\\/…`` still became a link): an invisible word joiner breaks each pattern.
    s = s.replace("://", ":" + _JOIN + "//").replace("@", _JOIN + "@")
    s = re.sub(r"(?i)\bwww\.", lambda m: m.group(0)[:-1] + _JOIN + ".", s)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return re.sub(r":(?=\S)", r"\\:", s)  # :red[…], :material/…: directives


def chart_label(text) -> str:
    """A category name for a plotly chart: its HTML-like tags escaped, so it shows as typed."""
    return html.escape("" if text is None else str(text), quote=False)
