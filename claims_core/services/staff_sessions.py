"""Staff sessions that behave like a web admin's: a random token in an HttpOnly cookie, its hash in
a row (user, created, last seen, expiry, client). Checked on every page run; ended by log-out, by
2 idle hours or 12 hours in all, and at once when the owner deactivates the user or the user's
password changes (``accounts`` deletes the rows in the same transaction). Each log-in makes a new
token (no session fixation)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from ..infra.db import is_read_only, read_session, utcnow
from ..infra.models import StaffSession, StaffUser
from ..domain.windows import SESSION_IDLE, SESSION_MAX, session_over
from .accounts import StaffIdentity
from .unit_of_work import transactional

COOKIE = "claims_staff"
TOUCH_EVERY = timedelta(minutes=1)  # last-seen is written at most this often, not on every run


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(engine: Engine, identity: StaffIdentity, client: str = "", *,
          now: datetime | None = None) -> str:
    """A new session for a user who just proved their password; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    _insert(engine, identity.id, token_hash(token), (client or "")[:300], now or utcnow())
    return token


@transactional
def _insert(s: Session, user_id: int, hashed: str, client: str, now: datetime) -> None:
    s.add(StaffSession(token_hash=hashed, user_id=user_id, created_at=now, last_seen_at=now,
                       expires_at=now + SESSION_MAX, client=client))


def resolve(engine: Engine, token: str | None, *, now: datetime | None = None
            ) -> StaffIdentity | None:
    """Who this cookie belongs to, or None (unknown, ended, expired, or the user deactivated)."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    hashed = token_hash(token)
    with read_session(engine) as s:
        row = s.execute(select(StaffSession, StaffUser)
                        .join(StaffUser, StaffUser.id == StaffSession.user_id)
                        .where(StaffSession.token_hash == hashed)).first()
        if row is None:
            return None
        sess, user = row
        expired = session_over(sess.created_at, sess.last_seen_at, now)
        identity = StaffIdentity(user.id, user.username, user.display_name, user.role)
        active, last_seen = user.active, sess.last_seen_at
    if expired or not active:
        if not is_read_only(engine):
            end(engine, token)
        return None
    if now - last_seen >= TOUCH_EVERY and not is_read_only(engine):  # read-only: reads go on
        _touch(engine, hashed, now)
    return identity


@transactional
def _touch(s: Session, hashed: str, now: datetime) -> None:
    s.execute(update(StaffSession).where(StaffSession.token_hash == hashed)
              .values(last_seen_at=now))


@transactional
def end(s: Session, token: str | None) -> None:
    """Log-out: the row goes, so the cookie is worthless even if it was copied."""
    if token:
        s.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash(token)))


def purge_expired(engine: Engine, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    return _purge(engine, now)


@transactional
def _purge(s: Session, now: datetime) -> int:
    return s.execute(delete(StaffSession).where(
        (StaffSession.expires_at <= now) | (StaffSession.last_seen_at < now - SESSION_IDLE))
    ).rowcount or 0
