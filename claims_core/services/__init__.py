"""Services: one function per user action, one unit of work each, plus the event handlers that
hang side effects off events. See docs/architecture.md."""
