"""What the services stand on: configuration, the database (engine, models, migrations) and the
photo codec."""

# Every session that changes orders, claims or resolutions keeps the analytics roll-ups in step
# (session hooks, registered on import): whoever opens a session has imported this package.
from . import rollups  # noqa: E402,F401
