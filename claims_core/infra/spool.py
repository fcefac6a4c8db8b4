"""The webhook spool of a SQLite database: a second SQLite file beside it (``claims.db`` →
``claims-webhook-spool.db``) where the webhook routes store what they receive.

SQLite lets one transaction write at a time, per file. A customer filing a claim holds the main
file's write lock some tens of milliseconds; fifty webhook requests a second waiting behind
customers for it answered in seconds (Shopify gives a webhook 5). In a file of their own the
routes' short inserts never wait for a customer's transaction, nor a customer for theirs; the
background job moves spooled receipts into ``webhook_receipts`` (one short insert for many) and
applies them from there (``services/webhook_receipts``).

What is spooled is a receipt exactly as it will be stored: the signed, checked body and its
delivery id, unique per sender (a second copy is refused here as in the main table). It stays
a few seconds at most: the job moves it, then deletes it here. PostgreSQL writers don't queue
behind each other, so there the routes write to ``webhook_receipts`` directly (no spool); so
do a SQLite database in memory and one opened read-only (``for_database`` returns None).

The spool's one table is created here when the spool is first opened (a scratch file of the
routes, not the app's schema: nothing else refers to it, and the Alembic migrations are the
main file's).
"""
from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import (Column, DateTime, Engine, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, event)

from .db import is_read_only, is_sqlite, make_engine

metadata = MetaData()

spooled_receipts = Table(
    "spooled_receipts", metadata,
    Column("id", Integer, primary_key=True),  # AUTOINCREMENT: ids never reused, in commit order
    Column("source", String(16), nullable=False),
    Column("delivery_id", String(200), nullable=False),
    Column("topic", String(64), nullable=False, default=""),
    Column("sequence_key", String(80), nullable=False, default=""),
    Column("received_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False, default=""),
    UniqueConstraint("source", "delivery_id", name="uq_spooled_receipts_source_delivery"),
    sqlite_autoincrement=True,
)

SUFFIX = "-webhook-spool"

_engines: dict[str, Engine] = {}
_guard = threading.Lock()


def path_for(database: str | Path) -> Path:
    """The spool file of a SQLite database file."""
    p = Path(database)
    return p.with_name(p.stem + SUFFIX + p.suffix)


def for_database(engine: Engine) -> Engine | None:
    """The spool's engine for this (main) database, or None where there is no spool
    (PostgreSQL; SQLite in memory or read-only). One engine per spool file and process."""
    if not is_sqlite(engine) or is_read_only(engine):
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = str(path_for(database))
    with _guard:
        spool = _engines.get(path)
        if spool is None:
            spool = make_engine(f"sqlite:///{path}")
            event.listen(spool, "connect", _zero_what_is_deleted)
            metadata.create_all(spool)
            _engines[path] = spool
    return spool


def _zero_what_is_deleted(dbapi_conn, _record) -> None:
    """A moved receipt's body (personal data) is zeroed in the file, not left in free pages."""
    dbapi_conn.execute("PRAGMA secure_delete=ON")


def dispose_all() -> None:
    """Close every spool engine of this process (tests: each has its own database)."""
    with _guard:
        engines = list(_engines.values())
        _engines.clear()
    for e in engines:
        e.dispose()
