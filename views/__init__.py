"""The Streamlit page scripts (customer/ and staff/) and the two helpers they share: ``ui`` for
layout and ``safe_text`` for showing customer- or file-provided text as plain text.

Not named ``pages/``: Streamlit treats a folder of that name beside the entry script as its legacy
multipage app (see docs/architecture.md)."""
