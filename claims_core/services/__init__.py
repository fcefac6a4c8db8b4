"""Services: one function per user action, one unit of work each, plus the event handlers that
hang side effects off events. See docs/architecture.md."""

# Every write a user action makes keeps the analytics roll-ups in step: their session hooks are
# registered when ``infra.rollups`` is imported, and every writer (pages, API, webhooks, imports,
# CLI) comes through this package. Bulk writers that bypass it rebuild (``rollups.rebuild``).
from ..infra import rollups  # noqa: E402,F401
