"""Keeping the message catalogs in step with the code (``python -m claims_core catalogs``).

``extract()`` reads every message the code marks — calls named ``t(…)`` and ``N_(…)`` with a
literal first argument, ``….plural(singular, plural, n)`` — from ``claims_core/``, ``views/`` and
the entry scripts
(Babel's Python extractor) into ``locales/messages.pot``; ``update()`` merges it into each
language's ``messages.po`` (new messages come in untranslated, changed ones fuzzy); ``problems()``
lists what a release can't have: a message missing, untranslated or fuzzy in some language, a
translation whose ``{placeholders}`` differ from the English, or a template older than the code.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po, write_po

from .i18n import DEFAULT, LANGUAGES, LOCALES_DIR

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("claims_core", "views")
FILES = ("navigation.py", "app.py")  # the entry scripts (the public menu's titles)
KEYWORDS = {"t": None, "N_": None, "plural": (1, 2)}
TEMPLATE = LOCALES_DIR / "messages.pot"
PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)[^{}]*\}")


def po_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"


def extract() -> Catalog:
    """Every marked message of the code, with where it is used."""
    cat = Catalog(project="claims portal", charset="utf-8")
    for src in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
                ROOT / src, method_map=[("**.py", "python")], keywords=KEYWORDS,
                comment_tags=("TRANSLATORS:",), strip_comment_tags=True):
            if not message or (isinstance(message, tuple) and not message[0]):
                continue
            cat.add(message, None, [(f"{src}/{filename}", lineno)], auto_comments=comments,
                    context=context)
    for name in FILES:
        for lineno, message, comments, context in extract_from_file(
                "python", ROOT / name, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",),
                strip_comment_tags=True):
            if message:
                cat.add(message, None, [(name, lineno)], auto_comments=comments, context=context)
    return cat


def _write(cat: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_po(buf, cat, width=100, omit_header=False, sort_output=True, include_lineno=False)
    path.write_bytes(buf.getvalue())


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def update() -> dict[str, int]:
    """Write the template and merge it into every language; returns untranslated per language."""
    template = extract()
    _write(template, TEMPLATE)
    out = {}
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        path = po_path(lang)
        cat = _read(path, lang) if path.exists() else Catalog(locale=lang, charset="utf-8")
        cat.update(template, update_header_comment=False)
        cat.obsolete.clear()
        _write(cat, path)
        out[lang] = sum(1 for m in cat if m.id and not m.string)
    return out


def _ids(cat: Catalog) -> set:
    return {m.id for m in cat if m.id}


def _placeholders(text) -> set[str]:
    texts = text if isinstance(text, (tuple, list)) else (text,)
    return {name for t in texts if t for name in PLACEHOLDER.findall(t)}


def problems() -> list[str]:
    """What stops a release: stale template, missing/untranslated/fuzzy messages, placeholders."""
    out = []
    code = _ids(extract())
    if not TEMPLATE.exists() or _ids(_read(TEMPLATE)) != code:
        out.append("messages.pot is older than the code: run `python -m claims_core catalogs update`")
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        path = po_path(lang)
        if not path.exists():
            out.append(f"{lang}: no catalog")
            continue
        cat = _read(path, lang)
        for msgid in sorted(code - _ids(cat), key=str):
            out.append(f"{lang}: missing {msgid!r}")
        for m in cat:
            if not m.id or m.id not in code:
                continue
            strings = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
            if not all(strings):
                out.append(f"{lang}: untranslated {m.id!r}")
            elif m.fuzzy:
                out.append(f"{lang}: fuzzy {m.id!r}")
            elif _placeholders(m.string) != _placeholders(m.id):
                out.append(f"{lang}: placeholders differ in {m.id!r}")
    return out
