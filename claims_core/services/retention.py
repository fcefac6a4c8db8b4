"""The retention policy applied: what is due for removal now (Settings → Privacy shows the counts)
and removing it (the daily ``retention`` background job). Both read the same queries (``_due``).

How long each kind is kept is the owner's setting (bounds and defaults: ``domain/privacy.py``).
What "removed" means, per kind:

- **photos** of a claim decided or closed (its ``decided_at``, else when last changed) more than N
  months ago: the image and its thumbnail are emptied, ``removed_at`` set; the row stays (its file
  name, size, hashes and review): the claim's record and the evidence pack say "removed under the
  retention policy";
- **signatures** of those claims: the drawing and the typed name emptied, ``signature_removed_at``;
- **webhook payloads** (``webhook_receipts.payload``) of receipts no longer pending, received more
  than N days ago (one still waiting for its order is given up: ``ignored``); the receipt row stays,
  so a redelivery is still recognised;
- **outbox bodies** of mail sent, failed or withdrawn more than N days ago (the row, its recipient
  and subject stay: the outbox still shows what went out);
- **drafts** saved more than N days ago (``services.drafts.expired``);
- **unmatched inbound mail** received more than N days ago: discarded (raw mail and text gone);
  the text of mail already ignored or discarded goes too;
- **prepared data exports** (Shopify ``customers/data_request``) ``EXPORT_KEEP_DAYS`` after they
  were ready.

Nothing here touches a column the analytics roll-ups read (``infra/rollups.py``): statuses,
amounts and times are left as they are, so the figures don't move. Removal runs in batches of
``BATCH`` rows, one short write transaction each.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..domain import privacy
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.vocabulary import CLOSED, DECIDED_STATUSES, AuditAction
from ..infra.db import read_session, utcnow
from ..infra.models import (Claim, ClaimDraft, Evidence, InboundMail, OutboxMessage, PrivacyRequest,
                            StoreSettings, WebhookReceipt, settings_row)
from . import drafts
from . import settings as store_settings
from .events import record_event
from .unit_of_work import run

BATCH = 200
FINISHED_STATUSES = tuple(sorted(DECIDED_STATUSES | {CLOSED}))
RETENTION_REMOVED = "removed under the retention policy"


@dataclass
class RetentionCounts:
    photos: int = 0
    signatures: int = 0
    webhook_payloads: int = 0
    outbox_bodies: int = 0
    drafts: int = 0
    unmatched_mail: int = 0
    exports: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


def policy_of(settings: StoreSettings) -> dict[str, int]:
    """The store's retention settings ({setting: value}); an unset one reads as its default."""
    return {r.setting: getattr(settings, r.setting, None) or r.default
            for r in privacy.RETENTION_RULES}


def load_policy(engine: Engine) -> dict[str, int]:
    with read_session(engine) as s:
        return policy_of(settings_row(s))


# --- the queries (one per kind): the ids due now ----------------------------------------------------

def _cut(policy: dict[str, int], setting: str, now: datetime) -> datetime:
    return privacy.cutoff(privacy.RETENTION_BY_SETTING[setting], policy[setting], now)


def _finished_before(moment: datetime):
    return (Claim.status.in_(FINISHED_STATUSES)
            & (func.coalesce(Claim.decided_at, Claim.updated_at) <= moment))


def _due(kind: str, policy: dict[str, int], now: datetime):
    """The SELECT of the ids of ``kind``'s rows due for removal (counts and removal both use it)."""
    if kind == "photos":
        return (select(Evidence.id).join(Claim, Claim.id == Evidence.claim_id)
                .where(Evidence.removed_at.is_(None),
                       _finished_before(_cut(policy, "retain_photos_months", now))))
    if kind == "signatures":
        return select(Claim.id).where(
            Claim.signature_removed_at.is_(None),
            or_(Claim.signature_png.is_not(None), Claim.signature_name != ""),
            _finished_before(_cut(policy, "retain_photos_months", now)))
    if kind == "webhook_payloads":
        return select(WebhookReceipt.id).where(
            WebhookReceipt.status != "pending", WebhookReceipt.payload != "",
            WebhookReceipt.received_at <= _cut(policy, "retain_webhook_days", now))
    if kind == "outbox_bodies":
        return select(OutboxMessage.id).where(
            OutboxMessage.status.in_(("sent", "failed", "withdrawn")),
            or_(OutboxMessage.body_text != "", OutboxMessage.body_html != ""),
            OutboxMessage.created_at <= _cut(policy, "retain_outbox_days", now))
    if kind == "drafts":
        return select(ClaimDraft.id).where(drafts.expired(now, policy["retain_draft_days"]))
    if kind == "unmatched_mail":
        return select(InboundMail.id).where(
            InboundMail.received_at <= _cut(policy, "retain_unmatched_mail_days", now),
            or_(InboundMail.status == "unmatched",
                InboundMail.status.in_(("ignored", "discarded"))
                & (InboundMail.raw.is_not(None) | (InboundMail.body_text != ""))))
    if kind == "exports":
        return select(PrivacyRequest.id).where(
            PrivacyRequest.export_ready_at.is_not(None), PrivacyRequest.export_zip.is_not(None),
            PrivacyRequest.export_ready_at <= now - timedelta(days=privacy.EXPORT_KEEP_DAYS))
    raise ValueError(kind)


KINDS = tuple(f.name for f in fields(RetentionCounts))


def due_counts(engine: Engine, *, now: datetime | None = None) -> RetentionCounts:
    """What the next run would remove, per kind (Settings → Privacy)."""
    now = now or utcnow()
    with read_session(engine) as s:
        policy = policy_of(settings_row(s))
        return RetentionCounts(**{kind: s.scalar(select(func.count()).select_from(
            _due(kind, policy, now).subquery())) or 0 for kind in KINDS})


# --- removing ---------------------------------------------------------------------------------------

def _remove(s: Session, kind: str, ids: list[int], now: datetime) -> None:
    if kind == "photos":
        s.execute(update(Evidence).where(Evidence.id.in_(ids))
                  .values(data=b"", thumbnail=b"", removed_at=now)
                  .execution_options(synchronize_session=False))
    elif kind == "signatures":
        s.execute(update(Claim).where(Claim.id.in_(ids))
                  .values(signature_png=None, signature_name="", signature_removed_at=now)
                  .execution_options(synchronize_session=False))
    elif kind == "webhook_payloads":
        s.execute(update(WebhookReceipt).where(WebhookReceipt.id.in_(ids),
                                               WebhookReceipt.outcome == "waiting")
                  .values(outcome="ignored", detail="its order never arrived; the body was "
                          + RETENTION_REMOVED)
                  .execution_options(synchronize_session=False))
        s.execute(update(WebhookReceipt).where(WebhookReceipt.id.in_(ids)).values(payload="")
                  .execution_options(synchronize_session=False))
    elif kind == "outbox_bodies":
        s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                  .values(body_text="", body_html="")
                  .execution_options(synchronize_session=False))
    elif kind == "drafts":
        s.execute(delete(ClaimDraft).where(ClaimDraft.id.in_(ids))
                  .execution_options(synchronize_session=False))
    elif kind == "unmatched_mail":
        s.execute(update(InboundMail).where(InboundMail.id.in_(ids), InboundMail.status == "unmatched")
                  .values(status="discarded", handled_by="retention", handled_at=now)
                  .execution_options(synchronize_session=False))
        s.execute(update(InboundMail).where(InboundMail.id.in_(ids)).values(raw=None, body_text="")
                  .execution_options(synchronize_session=False))
    elif kind == "exports":
        s.execute(update(PrivacyRequest).where(PrivacyRequest.id.in_(ids))
                  .values(export_zip=None, detail="the prepared export was " + RETENTION_REMOVED)
                  .execution_options(synchronize_session=False))


def apply_retention(engine: Engine, *, now: datetime | None = None,
                    stop: threading.Event | None = None) -> RetentionCounts:
    """Remove everything due (the ``retention`` job, daily). Returns what it removed, per kind."""
    now = now or utcnow()
    policy = load_policy(engine)
    done = RetentionCounts()
    for kind in KINDS:
        while not (stop is not None and stop.is_set()):
            def batch(s: Session, kind=kind) -> int:
                ids = list(s.scalars(_due(kind, policy, now).limit(BATCH)))
                if ids:
                    _remove(s, kind, ids, now)
                return len(ids)
            n = run(engine, batch)
            setattr(done, kind, getattr(done, kind) + n)
            if n < BATCH:
                break
    if done.total:  # the log says what went (counts only)
        run(engine, lambda s: record_event(s, actor="system", action=AuditAction.RETENTION_APPLIED,
                                           at=now, details=done.as_dict()))
    return done


# --- the owner's settings ---------------------------------------------------------------------------

def validate_policy(changes: dict[str, object]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in changes.items():
        rule = privacy.RETENTION_BY_SETTING.get(key)
        if rule is None:
            raise InvalidInput(f"Unknown setting {key}.", ErrorCode.SETTING_UNKNOWN)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{rule.label}: a whole number of {rule.unit}.",
                               ErrorCode.SETTING_INVALID)
        if not rule.low <= value <= rule.high:
            raise InvalidInput(f"{rule.label}: between {rule.low} and {rule.high} {rule.unit}.",
                               ErrorCode.SETTING_INVALID)
        out[key] = value
    return out


def save_policy(engine: Engine, actor: str, changes: dict[str, object]) -> list[str]:
    """Save the retention settings (each within its bounds); returns what changed."""
    return store_settings.save_changes(engine, actor, validate_policy(changes))


def removed_photos(engine: Engine, claim_id: int) -> tuple[set[int], bool]:
    """(ids of the claim's photos removed under the policy, whether its signature was)."""
    with read_session(engine) as s:
        photos = set(s.scalars(select(Evidence.id).where(Evidence.claim_id == claim_id,
                                                         Evidence.removed_at.is_not(None))))
        signature = s.scalar(select(Claim.signature_removed_at).where(Claim.id == claim_id))
        return photos, signature is not None
