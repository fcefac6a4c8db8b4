"""Staff accounts: Argon2id password hashes (argon2-cffi), roles, lockout after repeated failures."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.errors import AuthError, ErrorCode
from ..domain.vocabulary import PERMISSIONS, ROLES, AuditAction, Role, can  # noqa: F401
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import StaffUser
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


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise AuthError(f"The password must be at least {MIN_PASSWORD_LEN} characters.", ErrorCode.ACCOUNT_RULE)
    if len(password) > 1024:
        raise AuthError("The password is too long.", ErrorCode.ACCOUNT_RULE)


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
    check_password_strength(password)
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


def _user(s: Session, username: str) -> StaffUser:
    user = s.scalars(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None:
        raise AuthError("No such user.", ErrorCode.NOT_FOUND)
    return user


def count_users(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(StaffUser)) or 0


def authenticate(engine: Engine, username: str, password: str, *,
                 now: datetime | None = None) -> StaffIdentity:
    """Check a login. Wrong user and wrong password give the same answer; after
    ``MAX_FAILED_LOGINS`` failures the account is locked for ``LOCKOUT`` (then it unlocks by
    itself, so nobody can lock a real user out for good)."""
    now = now or utcnow()
    generic = AuthError("Wrong username or password.")
    u = (username or "").strip().lower()
    with write_session(engine) as s:
        user = s.scalars(select(StaffUser).where(StaffUser.username == u)).first()
        if user is None or not user.active:
            try:
                _hasher.verify(_DUMMY_HASH, password or "")
            except VerificationError:
                pass
            raise generic
        if user.locked_until is not None and user.locked_until > now:
            minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
            raise AuthError(
                f"Too many failed attempts. This account is locked; try again in {minutes} minutes."
            )
        try:
            _hasher.verify(user.password_hash, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
                record_event(s, actor="system", action=AuditAction.USER_LOCKED,
                                    details={"username": u}, at=now)
            s.commit()
            raise generic
        user.failed_logins = 0
        user.locked_until = None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return StaffIdentity(user.id, user.username, user.display_name, user.role)


# --- sessions and roles -------------------------------------------------------------------------

SESSION_IDLE = timedelta(hours=2)
SESSION_MAX = timedelta(hours=12)

def session_expired(logged_in_at: datetime, last_seen_at: datetime, now: datetime | None = None) -> bool:
    """A staff session ends after 2 idle hours, or 12 hours after login whatever happens."""
    now = now or utcnow()
    return now - last_seen_at > SESSION_IDLE or now - logged_in_at > SESSION_MAX


def change_password(engine: Engine, username: str, new_password: str, *, actor: str) -> None:
    check_password_strength(new_password)
    _set_password(engine, username, hash_password(new_password), actor)  # hashed outside


@transactional
def _set_password(s: Session, username: str, password_hash: str, actor: str) -> None:
    user = _user(s, username)
    user.password_hash = password_hash
    user.failed_logins = 0
    user.locked_until = None
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
                        bool(u.locked_until and u.locked_until > now))
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
