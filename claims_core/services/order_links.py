"""The owner's side of the signed order link (Settings → Email link): see the secret once, rotate
it, send yourself a test link. The rule itself (what is signed, how it is checked) is
``domain.order_link``; the portal's side is ``lookup.open_order_link``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain import order_link
from ..domain.errors import ErrorCode, InvalidInput, OrderNotFound
from ..domain.identifiers import normalize_order_number
from ..domain.vocabulary import AuditAction
from ..infra.db import read_session, utcnow
from ..infra.models import Order, StaffUser, ensure_settings_row, settings_row
from . import notifications
from .events import record_event
from .unit_of_work import transactional


@dataclass(frozen=True)
class LinkSecret:
    secret: str | None  # the secret itself, only the one time it is shown (None afterwards)
    shown_before: bool  # it was shown already: rotate to see a new one
    rotated_at: datetime | None
    portal_url: str


@transactional
def secret_for_owner(s: Session, actor: str) -> LinkSecret:
    """The link secret for Settings → Email link: returned once (made first if there is none
    yet), then only "shown before"."""
    row = ensure_settings_row(s)
    if row.order_link_secret and row.order_link_secret_shown:
        return LinkSecret(None, True, row.order_link_rotated_at, notifications.public_url())
    secret = notifications.order_link_secret(s)
    row.order_link_secret_shown = True
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"order_link_secret": "shown"})
    return LinkSecret(secret, False, row.order_link_rotated_at, notifications.public_url())


@transactional
def rotate_secret(s: Session, actor: str, *, now: datetime | None = None) -> LinkSecret:
    """A new secret, shown once: every link made with the old one stops opening orders (it
    becomes a prefilled look-up form)."""
    row = ensure_settings_row(s)
    row.order_link_secret = order_link.new_secret()
    row.order_link_secret_shown = True
    row.order_link_rotated_at = now or utcnow()
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"order_link_secret": "rotated"})
    return LinkSecret(row.order_link_secret, False, row.order_link_rotated_at,
                      notifications.public_url())


@transactional
def send_test_link(s: Session, staff_id: int, order_query: str = "", *,
                   now: datetime | None = None) -> str:
    """Email the signed link of an order (the one typed, else the newest) to this staff member,
    through the outbox. Returns the address it goes to."""
    user = s.get(StaffUser, staff_id)
    if user is None or not user.email:
        raise InvalidInput("Add your email address in Settings → Staff first: the test link is "
                           "sent there.", ErrorCode.STAFF_EMAIL_MISSING)
    number = normalize_order_number(order_query)
    order = (s.scalars(select(Order).where(Order.order_number == number)).first() if number
             else s.scalars(select(Order).order_by(Order.created_at.desc(), Order.id.desc())
                            .limit(1)).first())
    if order is None:
        raise OrderNotFound("No order with that number." if number
                            else "There are no orders yet to make a link for.")
    now = now or utcnow()
    link = notifications.order_link_for(s, order)
    notifications.enqueue(
        s, key=f"order_link_test:{user.id}:{now.isoformat()}", kind="order_link_test",
        to=user.email, claim=None, now=now, lines=[
            f"This is the link a customer gets for order {order.name}: it opens the order in the "
            "claims portal without typing the order number and email.",
            link,
            "Open it on your phone to check. Links made before the secret's last rotation no "
            "longer open the order."])
    record_event(s, actor=f"staff:{user.username}", action=AuditAction.SETTINGS_CHANGED,
                 order_id=order.id, details={"order_link_test": user.email}, at=now)
    return user.email


def status(engine) -> LinkSecret:
    """Whether the secret was shown already and when it was last rotated (never the secret)."""
    with read_session(engine) as s:
        row = settings_row(s)
        return LinkSecret(None, bool(row.order_link_secret and row.order_link_secret_shown),
                          row.order_link_rotated_at, notifications.public_url())
