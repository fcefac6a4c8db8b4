"""Privacy rules: how long each kind of personal data is kept (the retention policy the owner sets
in Settings → Privacy, within these bounds), and the deadline for a customer's data request.

What "removed" means for each kind is the retention job's (services/retention.py); this module
says only *when*: the cut-off moment before which a row is due.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from .messages import N_
from .windows import DRAFT_DAYS


@dataclass(frozen=True)
class RetentionRule:
    setting: str  # the StoreSettings column
    label: str  # for the owner (English: staff pages)
    unit: str  # "months" | "days"
    default: int
    low: int
    high: int


RETENTION_RULES: tuple[RetentionRule, ...] = (
    RetentionRule("retain_photos_months", "Photos and signatures, after a claim is decided or closed",
                  "months", 24, 1, 120),
    RetentionRule("retain_webhook_days", "Stored webhook payloads", "days", 30, 1, 365),
    RetentionRule("retain_outbox_days", "Email bodies in the outbox", "days", 90, 1, 3650),
    RetentionRule("retain_draft_days", "Unfinished claims (drafts) and their photos", "days",
                  DRAFT_DAYS, 1, 90),
    RetentionRule("retain_unmatched_mail_days", "Unmatched inbound mail", "days", 30, 1, 365),
)
RETENTION_BY_SETTING = {r.setting: r for r in RETENTION_RULES}

# Shopify asks for a customer's data request, or an erasure, to be completed within 30 days.
COMPLIANCE_DAYS = 30
# a prepared export (a ZIP of the customer's data) is kept this long after it is ready, for the
# owner to download and send on; then the retention job removes it
EXPORT_KEEP_DAYS = 30


def months_before(moment: datetime, months: int) -> datetime:
    """The same moment ``months`` calendar months earlier (the 31st becomes the month's last day)."""
    total = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def cutoff(rule: RetentionRule, value: int, now: datetime) -> datetime:
    """Rows of ``rule``'s kind older than this (decided before it, for photos) are due."""
    if rule.unit == "months":
        return months_before(now, value)
    return now - timedelta(days=value)


def compliance_due(received_at: datetime) -> datetime:
    return received_at + timedelta(days=COMPLIANCE_DAYS)


# --- the privacy notice (the portal's own words; the store can write its own per language) -------

NOTICE_TITLE = N_("Privacy notice")
NOTICE_PARAGRAPHS = (
    N_("{store} uses this claims portal to handle problems with your deliveries. This notice says "
       "what it keeps about you, for how long, and how to get a copy or have it erased."),
    N_("What we keep: your order (your name, email address and delivery address, what you bought), "
       "the tracking of your parcel, the claims you file with their description, photos and "
       "signature, the messages and emails between you and us, and our decisions."),
    N_("Why: to decide your claim, to pay or reship what we owe you, and to recognise claims "
       "that were filed twice."),
    N_("How long: photos and signatures are removed {photo_months} months after your claim is "
       "decided or closed. A claim you started but didn't send is kept {draft_days} days. Emails "
       "we sent you are kept in full {outbox_days} days; an email of yours we couldn't match to a "
       "claim, {mail_days} days. The rest of a claim's record (reference, dates, amounts, "
       "decision) is kept for our accounts."),
    N_("Your rights: you can ask for a copy of everything we keep about you, or ask us to erase "
       "it. Write to {email}; we answer within 30 days. A claim still open is decided first, "
       "then erased."),
)
