"""API keys: made by the owner (Settings or the CLI), shown once, kept as a SHA-256, revocable.

A key is ``ck_<8 hex>_<32 url-safe characters>``; the ``ck_<8 hex>`` part is its prefix, kept in
clear to tell keys apart in lists. Checking a key is one indexed look-up of its hash (a key has
256 bits of randomness: a fast hash is the right tool, unlike passwords).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..domain.errors import ErrorCode, InvalidInput
from ..domain.text import required_text
from ..domain.vocabulary import AuditAction
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import ApiKey, ApiRateCounter
from .events import record_event
from .unit_of_work import transactional

SCOPES = ("read", "write")
LAST_USED_EVERY = timedelta(minutes=1)  # last use is written at most this often per key


@dataclass(frozen=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    scope: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """Who the audit trail says acted through this key."""
        return f"api:{self.name}"

    def allows(self, scope: str) -> bool:
        return self.scope == "write" or scope == "read"


def _view(k: ApiKey) -> ApiKeyView:
    return ApiKeyView(k.id, k.name, k.prefix, k.scope, k.created_by, k.created_at, k.last_used_at,
                      k.revoked_at)


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transactional
def _store(s: Session, name: str, scope: str, actor: str, prefix: str, digest: str) -> ApiKeyView:
    row = ApiKey(name=name, prefix=prefix, key_hash=digest, scope=scope, created_by=actor,
                 created_at=utcnow())
    s.add(row)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.API_KEY_CREATED,
                 details={"key_id": row.id, "name": name, "scope": scope, "prefix": prefix})
    return _view(row)


def create_key(engine: Engine, name: str, scope: str, actor: str) -> tuple[ApiKeyView, str]:
    """A new key: (its row, the key itself — shown this once, never stored)."""
    name = required_text(name, "The key's name", "Name the key (e.g. the tool that will use it).")
    if len(name) > 100:
        raise InvalidInput("Keep the key's name under 100 characters.", ErrorCode.TEXT_TOO_LONG)
    if scope not in SCOPES:
        raise InvalidInput("The scope is read or write.", ErrorCode.API_KEY_SCOPE_INVALID)
    prefix = "ck_" + secrets.token_hex(4)
    raw = f"{prefix}_{secrets.token_urlsafe(24)}"
    return _store(engine, name, scope, actor, prefix, key_hash(raw)), raw


@transactional
def revoke(s: Session, key_id: int, actor: str) -> None:
    row = s.get(ApiKey, key_id)
    if row is None:
        raise InvalidInput("No such key.", ErrorCode.NOT_FOUND)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_event(s, actor=actor, action=AuditAction.API_KEY_REVOKED,
                     details={"key_id": row.id, "name": row.name, "prefix": row.prefix})


def list_keys(engine: Engine) -> list[ApiKeyView]:
    with read_session(engine) as s:
        return [_view(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]


def authenticate(engine: Engine, raw: str | None, *, now: datetime | None = None) -> ApiKeyView | None:
    """The active key ``raw`` is, or None. Notes its last use (at most once a minute)."""
    if not raw or not raw.startswith("ck_") or len(raw) > 200:
        return None
    digest = key_hash(raw)
    with read_session(engine) as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at:
            return None
        view = _view(row)
    now = now or utcnow()
    if view.last_used_at is None or now - view.last_used_at >= LAST_USED_EVERY:
        with write_session(engine) as s:
            s.execute(update(ApiKey).where(ApiKey.id == view.id).values(last_used_at=now))
    return view


# --- the rate limit, counted in the database (so every instance shares it) ----------------------

@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    hits: int  # requests of this key in this window, this one included
    retry_after: int  # seconds until the window ends


def count_request(engine: Engine, key_id: int, limit: int, period_seconds: int, *,
                  now: datetime | None = None) -> RateVerdict:
    """Count one request of ``key_id`` in the current fixed window of ``period_seconds``: one
    UPSERT in a short transaction (SQLite and PostgreSQL alike), so every instance of the app
    sees the same count. The first request of a window drops the key's older windows."""
    period = max(1, int(period_seconds))
    at = int((now or utcnow()).timestamp())
    window = at - at % period
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(ApiRateCounter).values(api_key_id=key_id, window_start=window, hits=1)
    stmt = stmt.on_conflict_do_update(index_elements=["api_key_id", "window_start"],
                                      set_={"hits": ApiRateCounter.hits + 1}
                                      ).returning(ApiRateCounter.hits)
    with write_session(engine) as s:
        hits = s.execute(stmt).scalar_one()
        if hits == 1:
            s.execute(delete(ApiRateCounter).where(ApiRateCounter.api_key_id == key_id,
                                                   ApiRateCounter.window_start < window))
    return RateVerdict(hits <= limit, hits, max(1, window + period - at))
