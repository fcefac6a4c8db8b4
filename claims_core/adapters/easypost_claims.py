"""Filing recoveries with EasyPost (``POST /v2/claims``), and cancelling them there when staff
cancel the recovery (``POST /v2/claims/{id}/cancel``): the sender side of both outboxes.

``services.recoveries.request_filing`` writes a ``recovery_filings`` row in the transaction that
asks; ``send_pending`` (the ``easypost_claims`` background job) leases due rows and, outside any
transaction, builds the packet (the evidence pack as supporting documentation, the commercial
invoice as the invoice; plain base64 strings), then files through the official ``easypost``
client. **Idempotent:** before creating, it lists the account's claims and takes the one already
filed for the tracking code (a retry after a lost answer never files twice). EasyPost's refusals
(4xx other than 429) are kept with EasyPost's message and shown on the claim page; anything else is
tried again with backoff.

Configuration: ``EASYPOST_API_KEY`` (``infra.config.secret``), ``CLAIMS_EASYPOST_BASE_URL`` (default
``https://api.easypost.com/v2``; tests point it at a fake server). The key is sent as HTTP Basic
(user = the key), as EasyPost documents; the client's own header would be ``Bearer``.
"""
from __future__ import annotations

import base64
import logging
import os
from datetime import datetime

from ..infra import config
from ..infra.db import utcnow
from ..services import recoveries
from . import evidence_pack, recovery_packet

log = logging.getLogger("claims.easypost_claims")

DEFAULT_BASE_URL = "https://api.easypost.com/v2"
LIST_PAGES = 5  # pages of 100 claims looked through for one already filed


def base_url() -> str:
    return (os.environ.get("CLAIMS_EASYPOST_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/")


def client():
    import requests
    from easypost import EasyPostClient

    key = config.secret("EASYPOST_API_KEY")
    c = EasyPostClient(key, api_base=base_url(), timeout=30)
    # EasyPost documents HTTP Basic (the key as user name, no password); requests applies a
    # session's auth after the headers, so this is what goes out
    c._requests_session.auth = requests.auth.HTTPBasicAuth(key, "")
    return c


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _already_filed(c, tracking_code: str) -> str | None:
    """The id of a claim EasyPost already has for this tracking code, if any (not a cancelled
    one: a recovery cancelled and opened again files anew)."""
    params = {"page_size": 100}
    for _ in range(LIST_PAGES):
        page = c.claim.all(**params)
        claims = list(page.get("claims") or [])
        for cl in claims:
            if getattr(cl, "tracking_code", None) == tracking_code and \
                    getattr(cl, "status", None) != "cancelled":
                return cl.id
        if not page.get("has_more") or not claims:
            return None
        params = {"page_size": 100, "before_id": claims[-1].id}
    return None


def _refusal(e) -> str | None:
    """EasyPost's message when it refused the claim (4xx other than 429), else None."""
    status = getattr(e, "http_status", None)
    if status is None or not 400 <= status < 500 or status == 429:
        return None
    msg = getattr(e, "message", "") or str(e)
    errors = getattr(e, "errors", None) or []
    details = "; ".join(str(x.get("message", x)) if isinstance(x, dict) else str(x)
                        for x in errors)
    return f"{msg} ({details})" if details else msg


def send_one(engine, work: recoveries.FilingWork, *, now: datetime | None = None) -> str:
    """File one leased recovery. Returns "sent", "refused" or "retry"."""
    try:
        c = client()
        existing = _already_filed(c, work.tracking_code)
        if existing is None:
            evidence = evidence_pack.build(engine, work.claim_id, now=now)
            invoice = recovery_packet.invoice_pdf(engine, work.claim_id, now=now)
            made = c.claim.create(**work.params,
                                  supporting_documentation_attachments=[_b64(evidence)],
                                  invoice_attachments=[_b64(invoice)])
            existing = made.id
    except Exception as e:  # noqa: BLE001 - the client's errors, the network, a broken packet
        return _failed(engine, e, "filing", work.filing_id, recoveries.filing_refused,
                       recoveries.filing_retry, now)
    recoveries.filing_sent(engine, work.filing_id, existing, now=now)
    return "sent"


def _failed(engine, e: Exception, what: str, item_id: int, refused, retry, now) -> str:
    """EasyPost said no (recorded with its message: "refused") or couldn't be reached or broke
    (tried again later: "retry")."""
    message = _refusal(e)
    if message is not None:
        refused(engine, item_id, message, now=now)
        return "refused"
    log.warning("EasyPost %s %s failed, tried again later: %s", what, item_id, e)
    retry(engine, item_id, f"{type(e).__name__}: {e}", now=now)
    return "retry"


def cancel_one(engine, work: recoveries.CancelWork, *, now: datetime | None = None) -> str:
    """Cancel one recovery's EasyPost claim (``POST /v2/claims/{id}/cancel``). Idempotent: the
    claim is read first and left alone when it is cancelled already. Returns "cancelled",
    "none" (EasyPost never got it), "refused" or "retry"."""
    try:
        c = client()
        claim_id = work.easypost_claim_id or _already_filed(c, work.tracking_code)
        if claim_id is None:
            if work.filing_in_flight:  # its filing may still land: look again later
                recoveries.cancel_retry(engine, work.cancel_id, "the filing is still on its way",
                                        now=now)
                return "retry"
            recoveries.cancel_done(engine, work.cancel_id, None, now=now)
            return "none"
        if getattr(c.claim.retrieve(claim_id), "status", None) != "cancelled":
            c.claim.cancel(claim_id)
    except Exception as e:  # noqa: BLE001 - the client's errors, the network
        return _failed(engine, e, "cancel", work.cancel_id, recoveries.cancel_refused,
                       recoveries.cancel_retry, now)
    recoveries.cancel_done(engine, work.cancel_id, claim_id, now=now)
    return "cancelled"


def send_pending(engine, *, now: datetime | None = None, stop=None) -> dict:
    """The filings, then the cancels, due now."""
    counts = {"sent": 0, "refused": 0, "retry": 0}
    if not recoveries.easypost_enabled():
        return counts
    for work in recoveries.lease_filings(engine, now=now or utcnow()):
        if stop is not None and stop.is_set():
            break
        counts[send_one(engine, work, now=now)] += 1
    for work in recoveries.lease_cancellations(engine, now=now or utcnow()):
        if stop is not None and stop.is_set():
            break
        outcome = cancel_one(engine, work, now=now)
        key = {"cancelled": "cancelled", "none": "cancelled", "refused": "cancel_refused",
               "retry": "cancel_retry"}[outcome]
        counts[key] = counts.get(key, 0) + 1
    return counts


def background_job(ctx) -> dict:
    return send_pending(ctx.engine, now=ctx.now, stop=ctx.stop)


# --- EasyPost's claim events (arriving at /webhooks/easypost; applied with the receipts) ----------

CLAIM_EVENTS = ("claim.submitted", "claim.updated", "claim.approved", "claim.rejected",
                "claim.cancelled")


def parse_claim_event(payload) -> recoveries.EasyPostClaimEvent | None:
    """An EasyPost Event about a Claim (the event name in ``description``, the Claim in
    ``result``), or None for any other event. ``ValueError`` for a claim event that isn't the
    documented shape."""
    if not isinstance(payload, dict):
        return None
    name = str(payload.get("description") or "").strip().lower()
    if name not in CLAIM_EVENTS:
        return None
    claim = payload.get("result")
    if not isinstance(claim, dict) or not isinstance(claim.get("id"), str) or not claim["id"]:
        raise ValueError("EasyPost: a claim event without its Claim (result.id)")
    approved = claim.get("approved_amount")
    if approved is not None and not isinstance(approved, (str, int, float)) \
            or isinstance(approved, bool):
        raise ValueError("EasyPost: result.approved_amount is not an amount")

    def text(key, n):
        v = claim.get(key)
        return str(v)[:n] if isinstance(v, (str, int, float)) and not isinstance(v, bool) else ""
    return recoveries.EasyPostClaimEvent(
        name=name, event_id=str(payload.get("id") or "")[:200], claim_id=claim["id"][:64],
        status=text("status", 32), status_detail=text("status_detail", 500),
        approved_amount=None if approved is None else str(approved)[:32],
        tracking_code=text("tracking_code", 64))
