"""Staff accounts: Argon2id password hashes (argon2-cffi), roles, lockout after repeated failures."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from argon2 import PasswordHasher
from zxcvbn import zxcvbn
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.errors import AuthError, ErrorCode
from ..domain.identifiers import client_key
from ..domain.vocabulary import PERMISSIONS, ROLES, AuditAction, Role, can  # noqa: F401
from ..infra.db import read_session, utcnow
from ..infra.models import LookupAttempt, StaffSession, StaffUser
from .events import record_event
from .unit_of_work import transactional

MIN_PASSWORD_LEN = 10
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verifying against this keeps a login for an unknown user as slow as for a real one.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


@dataclass(frozen=True)
class StaffIdentity:
    id: int
    username: str
    display_name: str
    role: str

    @property
    def actor(self) -> str:
        return f"staff:{self.username}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


MIN_PASSWORD_SCORE = 3  # zxcvbn: 0 (guessable at once) … 4 (very hard); 3 resists offline guessing


def check_password_strength(password: str, username: str = "") -> None:
    """At least ``MIN_PASSWORD_LEN`` characters, and hard to guess by the zxcvbn estimator
    (common passwords, keyboard runs, the username and the shop's words count against it)."""
    if len(password) < MIN_PASSWORD_LEN:
        raise AuthError(f"The password must be at least {MIN_PASSWORD_LEN} characters.",
                        ErrorCode.ACCOUNT_RULE)
    if len(password) > 1024:
        raise AuthError("The password is too long.", ErrorCode.ACCOUNT_RULE)
    verdict = zxcvbn(password[:100], user_inputs=[username, "claims", "shop", "store"])
    if verdict["score"] < MIN_PASSWORD_SCORE:
        advice = " ".join(filter(None, [verdict["feedback"].get("warning", ""),
                                        *verdict["feedback"].get("suggestions", [])]))
        raise AuthError("That password is easy to guess. " + (advice or "Use a few uncommon "
                        "words together, or a longer phrase."), ErrorCode.ACCOUNT_RULE)


def check_username(username: str) -> str:
    u = (username or "").strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._@-]{1,63}", u):
        raise AuthError("A username is 2–64 letters, digits, dots, dashes, underscores or @.", ErrorCode.ACCOUNT_RULE)
    return u


def add_user(engine: Engine, username: str, role: str, password: str,
             display_name: str = "", *, actor: str = "cli") -> StaffIdentity:
    u = check_username(username)
    if role not in ROLES:
        raise AuthError(f"The role must be one of {', '.join(ROLES)}.", ErrorCode.ACCOUNT_RULE)
    check_password_strength(password, u)
    password_hash = hash_password(password)  # slow: before the transaction, not inside it
    try:
        return _add_user(engine, u, role, (display_name or u)[:200], password_hash, actor)
    except IntegrityError:
        raise AuthError(f"A user named {u} already exists.", ErrorCode.ACCOUNT_RULE)


@transactional
def _add_user(s: Session, username: str, role: str, display_name: str, password_hash: str,
              actor: str) -> StaffIdentity:
    user = StaffUser(username=username, display_name=display_name, role=role,
                     password_hash=password_hash)
    s.add(user)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.USER_ADDED,
                 details={"username": username, "role": role})
    return StaffIdentity(user.id, user.username, user.display_name, user.role)


def _end_sessions(s: Session, user_id: int) -> None:
    s.execute(delete(StaffSession).where(StaffSession.user_id == user_id))


def _user(s: Session, username: str) -> StaffUser:
    user = s.scalars(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None:
        raise AuthError("No such user.", ErrorCode.NOT_FOUND)
    return user


def count_users(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(StaffUser)) or 0


LOGIN_FAILED = ("Wrong username or password, or too many attempts: check them, wait a few "
                "minutes if you tried several times, and try again.")
SLOW_AFTER = 3  # failures from one client before each further try waits a little longer
MAX_DELAY_SECONDS = 3.0
# Across all clients: after this many failures for one username in LOCKOUT, a try for it is let
# through only once the last one is INTERVAL_BASE·2^(n - USER_SLOW_AFTER) old (at most
# USER_MAX_INTERVAL) — guesses spread over many addresses slow to a trickle — except from a client
# that logged in as that user in the last TRUSTED_FOR (the owner's own machine isn't held up).
USER_SLOW_AFTER = 10
INTERVAL_BASE = timedelta(seconds=1)
USER_MAX_INTERVAL = timedelta(seconds=60)
TRUSTED_FOR = timedelta(hours=20)  # under the day after which LookupAttempt rows are purged


def _login_key(username: str, client: str | None) -> str:
    """One client's failures at one username (an IPv6 client counts as its /64)."""
    return f"login:{username[:64]}:{client_key(client)}"


def _user_key(username: str) -> str:
    """Every client's failures at one username."""
    return f"login-all:{username[:64]}"


def _trusted_key(username: str, client: str | None) -> str:
    """A client that logged in as this user lately."""
    return f"login-ok:{username[:64]}:{client_key(client)}"


def user_interval(failures: int) -> timedelta:
    """How long a try for a username waits after the one before, with ``failures`` on record
    from all clients (nothing below ``USER_SLOW_AFTER``)."""
    if failures < USER_SLOW_AFTER:
        return timedelta(0)
    return min(USER_MAX_INTERVAL, INTERVAL_BASE * 2 ** min(20, failures - USER_SLOW_AFTER))


@dataclass(frozen=True)
class _Ticket:
    failures: int  # this client's, before this try
    booked: list[int] | None  # the rows booking this try as a failure; None: refused unchecked


def authenticate(engine: Engine, username: str, password: str, *, client: str | None = None,
                 now: datetime | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> StaffIdentity:
    """Check a login. Every failure gets the same words: unknown user, deactivated user, wrong
    password, locked. Failures count per username **and client** (an IPv6 client as its /64):
    after ``SLOW_AFTER`` each try from that client waits longer, after ``MAX_FAILED_LOGINS`` in
    ``LOCKOUT`` that client is locked out of that username until the window moves on, while the
    user logs in from anywhere else (a stranger can't keep the owner out). Failures also count per
    username across clients: past ``USER_SLOW_AFTER`` the username takes one try at a time, at a
    growing interval, except from a client the user logged in from lately (``user_interval``).

    Each try is booked as a failure **before** the password is checked, in its own short write
    transaction (tries take turns there), so a burst can't check more passwords than the limit;
    the password is then verified outside any transaction (Argon2 takes a while; the database
    stays free), and a right one takes its booking back."""
    now = now or utcnow()
    u = (username or "").strip().lower()
    key, all_key, trusted_key = _login_key(u, client), _user_key(u), _trusted_key(u, client)
    with read_session(engine) as s:
        user = s.scalars(select(StaffUser).where(StaffUser.username == u)).first()
        known = user is not None and user.active
        stored = user.password_hash if known else _DUMMY_HASH
        identity = StaffIdentity(user.id, user.username, user.display_name, user.role) \
            if known else None
        trusted = s.scalar(select(func.count()).select_from(LookupAttempt).where(
            LookupAttempt.key == trusted_key, LookupAttempt.at >= now - TRUSTED_FOR)) or 0
    ticket = _book_try(engine, key, all_key, bool(trusted), now)
    if ticket.failures >= SLOW_AFTER:
        sleep(min(MAX_DELAY_SECONDS, 0.5 * (ticket.failures - SLOW_AFTER + 1)))
    if ticket.booked is None:  # locked or throttled: no password is checked
        raise AuthError(LOGIN_FAILED)
    try:
        _hasher.verify(stored, password or "")
        right = True
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        right = False
    if not (known and right):
        if known and ticket.failures + 1 == MAX_FAILED_LOGINS:
            _record_locked(engine, u, key, now)
        raise AuthError(LOGIN_FAILED)
    rehash = hash_password(password) if _hasher.check_needs_rehash(stored) else None
    _login_succeeded(engine, u, key, ticket.booked, trusted_key, rehash, now)
    return identity


@transactional
def _book_try(s: Session, key: str, all_key: str, trusted: bool, now: datetime) -> _Ticket:
    """Count the failures on record for this client and username and, unless over a limit, book
    this try as one more (the outcome takes it back if the password is right)."""
    if s.bind.dialect.name == "postgresql":  # one booking per key at a time, across processes
        for k in sorted((key, all_key)):
            s.execute(select(func.pg_advisory_xact_lock(func.hashtext(k))))
    since = now - LOCKOUT
    rows = dict(s.execute(
        select(LookupAttempt.key, func.count()).where(LookupAttempt.key.in_((key, all_key)),
                                                      LookupAttempt.at >= since)
        .group_by(LookupAttempt.key)).all())
    mine, everyone = rows.get(key, 0), rows.get(all_key, 0)
    if mine >= MAX_FAILED_LOGINS:
        return _Ticket(mine, None)
    if not trusted and everyone >= USER_SLOW_AFTER:
        last = s.scalar(select(func.max(LookupAttempt.at)).where(LookupAttempt.key == all_key))
        if last is not None and now - last < user_interval(everyone):
            return _Ticket(mine, None)
    booked = [LookupAttempt(key=key, at=now), LookupAttempt(key=all_key, at=now)]
    s.add_all(booked)
    s.execute(delete(LookupAttempt).where(LookupAttempt.at < now - timedelta(days=1)))
    s.flush()
    return _Ticket(mine, [b.id for b in booked])


@transactional
def _record_locked(s: Session, username: str, key: str, now: datetime) -> None:
    record_event(s, actor="system", action=AuditAction.USER_LOCKED, at=now,
                 details={"username": username, "client": key.rsplit(":", 1)[-1]})


@transactional
def _login_succeeded(s: Session, username: str, key: str, booked: list[int], trusted_key: str,
                     rehash: str | None, now: datetime) -> None:
    s.execute(delete(LookupAttempt).where(LookupAttempt.id.in_(booked)))
    s.execute(delete(LookupAttempt).where(LookupAttempt.key.in_((key, trusted_key))))
    s.add(LookupAttempt(key=trusted_key, at=now))  # this client is the user's, for a while
    if rehash:
        user = s.scalars(select(StaffUser).where(StaffUser.username == username)).first()
        if user is not None:
            user.password_hash = rehash


def _recently_locked(s: Session, username: str, now: datetime) -> bool:
    """Some client is locked out of this username right now, or the username is being guessed at
    from many (shown to the owner)."""
    rows = s.execute(select(LookupAttempt.key, func.count()).where(
        LookupAttempt.key.like(f"login:{username[:64]}:%") | (LookupAttempt.key == _user_key(username)),
        LookupAttempt.at >= now - LOCKOUT).group_by(LookupAttempt.key)).all()
    return any(n >= (USER_SLOW_AFTER if k == _user_key(username) else MAX_FAILED_LOGINS)
               for k, n in rows)


# --- sessions and roles -------------------------------------------------------------------------

def change_password(engine: Engine, username: str, new_password: str, *, actor: str) -> None:
    check_password_strength(new_password, username)
    _set_password(engine, username, hash_password(new_password), actor)  # hashed outside


@transactional
def _set_password(s: Session, username: str, password_hash: str, actor: str) -> None:
    user = _user(s, username)
    user.password_hash = password_hash
    s.execute(delete(LookupAttempt).where(
        LookupAttempt.key.like(f"login:{username[:64]}:%")
        | (LookupAttempt.key == _user_key(username))))  # a new password: the counts start again
    _end_sessions(s, user.id)  # a password reset signs out every browser at once
    record_event(s, actor=actor, action=AuditAction.PASSWORD_CHANGED, details={"username": username})


@transactional
def set_active(s: Session, username: str, active: bool, *, actor: str) -> None:
    user = _user(s, username)
    if not active and user.role == Role.OWNER:
        owners = s.scalar(select(func.count()).select_from(StaffUser).where(
            StaffUser.role == Role.OWNER, StaffUser.active)) or 0
        if owners <= 1:
            raise AuthError("The last active owner can't be deactivated.", ErrorCode.ACCOUNT_RULE)
    user.active = active
    if not active:
        _end_sessions(s, user.id)  # a deactivated user's open tabs stop working at once
    record_event(s, actor=actor, details={"username": username},
                 action=AuditAction.USER_ACTIVATED if active else AuditAction.USER_DEACTIVATED)


@dataclass(frozen=True)
class UserRow:
    username: str
    display_name: str
    role: str
    active: bool
    locked: bool


def list_users(engine: Engine, now: datetime | None = None) -> list[UserRow]:
    now = now or utcnow()
    with read_session(engine) as s:
        return [UserRow(u.username, u.display_name, u.role, u.active,
                        _recently_locked(s, u.username, now))
                for u in s.scalars(select(StaffUser).order_by(StaffUser.username))]


def set_notifications(engine: Engine, username: str, email: str, new_claims: bool, digest: bool, *,
                      actor: str) -> None:
    email = (email or "").strip()
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise AuthError("That email address doesn't look right.", ErrorCode.ACCOUNT_RULE)
    if (new_claims or digest) and not email:
        raise AuthError("Add an email address to receive mail.", ErrorCode.ACCOUNT_RULE)
    _set_notifications(engine, username, email, new_claims, digest, actor)


@transactional
def _set_notifications(s: Session, username: str, email: str, new_claims: bool, digest: bool,
                       actor: str) -> None:
    user = _user(s, username)
    user.email, user.notify_new_claims, user.daily_digest = email, new_claims, digest
    record_event(s, actor=actor, action=AuditAction.NOTIFICATIONS_CHANGED,
                 details={"username": username, "new_claims": new_claims, "digest": digest})
