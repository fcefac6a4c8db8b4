"""Email to customers and staff, written to the outbox in the transaction of the event that
caused it (the SMTP sender in ``adapters/mailer.py`` delivers it after commit).

The ``on_*`` functions are event handlers: ``handlers.EVENT_HANDLERS`` runs them for the events
they answer. Every mail has a unique key, so a handler run twice queues one mail.

Mails to a customer are written in the claim's language (``Claim.language``): every sentence is a
catalog message (``t("…")``, or a template marked with ``N_`` and translated where it is used),
amounts and dates are formatted as that language writes them, and the link to the claim page
carries the language (``&lang=de``) so the page speaks it too. Mails to staff stay in English.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, object_session

from ..domain import order_link as signed_links
from ..domain import windows
from ..domain.messages import N_, Amount
from ..domain.money import credit_with_bonus, format_minor, is_partial
from ..domain import disputes
from ..domain.vocabulary import DENIAL_EXPLANATIONS, ISSUE_TYPES, AuditAction, ResolutionKind, Role
from ..infra import config, i18n
from ..infra.db import read_session, utcnow
from ..infra.models import (Claim, Decision, Event, Message, Order, OutboxMessage, StaffUser,
                            StoreSettings, settings_row)
from . import mail_tokens


def public_url() -> str:
    """Where the app is reached from outside, for links in mails (``CLAIMS_PUBLIC_URL``)."""
    return config.public_url()


def claim_link(token: str, lang: str | None = None) -> str:
    """The customer's claim page; with a language, the page opens in it (``&lang=de``)."""
    link = f"{public_url()}/my-claim?token={quote(token, safe='')}"
    if lang is not None:
        link += f"&lang={quote(i18n.supported(lang) or i18n.DEFAULT, safe='')}"
    return link


def privacy_link(lang: str | None = None) -> str:
    """The privacy notice (what is kept, how long, how to ask for a copy or erasure), in the
    reader's language: every customer mail links it."""
    return f"{public_url()}/privacy?lang={quote(i18n.supported(lang) or i18n.DEFAULT, safe='')}"


def order_link_secret(s: Session) -> str:
    """The store's order-link key (``domain.order_link``), made on first need (in the caller's
    write transaction). Settings → Email link shows it to the owner once and rotates it."""
    row = settings_row(s)
    if not row.order_link_secret:
        row.order_link_secret = signed_links.new_secret()
    return row.order_link_secret


def order_link_for(s: Session, order: Order, lang: str | None = None) -> str:
    """The signed link that opens ``order`` in the portal without the look-up: the one the
    shop's own emails carry (Settings → Email link gives Shopify's template the same)."""
    url = signed_links.link(public_url(), order_link_secret(s), order.order_number, order.email)
    if lang is not None:
        url += f"&lang={quote(i18n.supported(lang) or i18n.DEFAULT, safe='')}"
    return url


# --- templates ----------------------------------------------------------------------------------

# Customers' subjects are catalog messages (translated in ``render``); staff's stay English.
SUBJECTS = {
    "claim_received": N_("We received your claim {ref}"),
    "info_requested": N_("{store} needs more information for claim {ref}"),
    "new_message": N_("New message about your claim {ref}"),
    "decision": N_("A decision on your claim {ref}"),
    "decision_updated": N_("The decision on your claim {ref} was updated"),
    "reminder": N_("Reminder: {store} is waiting for your reply on claim {ref}"),
    "auto_closed": N_("Your claim {ref} was closed"),
    "staff_new_claim": "New claim {ref} ({issue})",
    "staff_digest": "Daily claims digest for {store}",
    "staff_hold": "Claim {ref} is on hold: the carrier's tracking changed",
    "webhook_disabled": "A webhook endpoint of {store} was switched off",
    "order_link_test": "A test of the order link in {store}'s emails",
    "privacy_export_ready": "A customer data request for {store} is ready to download",
    "staff_recovery_deadline": "Claim {ref}: the carrier claim is due soon ({issue})",
    "staff_dispute": "Claim {ref}: the order is disputed with the customer's bank",
}
STAFF_KINDS = frozenset({"staff_new_claim", "staff_digest", "staff_hold", "webhook_disabled",
                         "order_link_test", "privacy_export_ready",
                         "staff_recovery_deadline", "staff_dispute"})


def translator_for(claim: Claim) -> i18n.Translator:
    """The customer's language, for everything written to them about this claim (a moment in a
    message is written as the store's local day)."""
    s = object_session(claim)
    return i18n.translator(claim.language, tz=settings_row(s).timezone if s is not None else None)


def render(kind: str, settings: StoreSettings, *, ref: str = "", link: str = "", lines: list[str],
           issue: str = "", t: i18n.Translator | str | None = None,
           order_link: str = "") -> tuple[str, str, str]:
    """(subject, plain text, HTML). Every line is escaped in the HTML part; the store's name and
    colour brand it. ``t`` is the reader's language (a ``Translator`` or a language code; English
    when None): the subject, the link to the claim and the HTML's ``lang`` follow it. ``lines`` come
    already written in it. Staff mails are English whatever ``t`` says."""
    if kind in STAFF_KINDS or not isinstance(t, i18n.Translator):
        t = i18n.translator(None if kind in STAFF_KINDS else t)
    if kind in STAFF_KINDS:
        subject = SUBJECTS[kind].format(store=settings.name, ref=ref, issue=issue)
    else:
        subject = t(SUBJECTS[kind], store=settings.name, ref=ref, issue=issue)
    text = "\n\n".join(lines + ([t("View your claim: {link}", link=link)] if link else [])
                       + ([t("Your order, to follow it or report another problem: {link}",
                             link=order_link)] if order_link else [])
                       + ([] if kind in STAFF_KINDS else
                          [t("How we handle your data: {link}", link=privacy_link(t.lang))])
                       + [f"— {settings.name} · {settings.support_email}"])
    accent = settings.accent_color if len(settings.accent_color or "") == 7 else "#2563eb"
    paras = "".join(f"<p>{html.escape(line).replace(chr(10), '<br>')}</p>" for line in lines)
    view = html.escape(t("View your claim"))  # not inside the f-string: the extractor reads calls
    button = (f'<p><a href="{html.escape(link, quote=True)}" style="background:{accent};color:#fff;'
              f'padding:10px 16px;border-radius:6px;text-decoration:none">{view}</a></p>'
              if link else "")
    your_order = html.escape(t("Your order"))
    if order_link:  # the signed order link (domain/order_link.py), as the shop's emails carry it
        button += (f'<p><a href="{html.escape(order_link, quote=True)}" style="color:{accent}">'
                   f'{your_order}</a></p>')
    privacy = "" if kind in STAFF_KINDS else (
        f' · <a href="{html.escape(privacy_link(t.lang), quote=True)}" style="color:#4b5563">'
        f'{html.escape(t("Privacy notice"))}</a>')
    body = (f'<div lang="{html.escape(t.lang, quote=True)}" '
            f'style="font-family:sans-serif;max-width:560px">'
            f'<h2 style="color:{accent}">{html.escape(settings.name)}</h2>{paras}{button}'
            f'<p style="color:#4b5563;font-size:13px">{html.escape(settings.name)} · '
            f'{html.escape(settings.support_email)}{privacy}</p></div>')
    return subject, text, body


def enqueue(s: Session, *, key: str, kind: str, to: str, claim: Claim | None, lines: list[str],
            link: str = "", issue: str = "", now: datetime | None = None,
            t: i18n.Translator | str | None = None, order_link: str = "") -> bool:
    """Queue one email in the caller's transaction; False if this notification exists already.
    ``t``: the reader's language (English when None), as for ``render``."""
    if not to:
        return False
    if s.scalars(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)).first() is not None:
        return False
    subject, text, body = render(kind, settings_row(s), ref=claim.reference if claim else "",
                                 link=link, lines=lines, issue=issue, t=t, order_link=order_link)
    # customers answer by email to the claim's signed reply address (staff mails carry none)
    reply_to = mail_tokens.reply_to_for(s, claim.id) if claim and kind not in STAFF_KINDS else ""
    s.add(OutboxMessage(dedupe_key=key, kind=kind, claim_id=claim.id if claim else None, to_addr=to,
                        reply_to=reply_to, subject=subject[:300], body_text=text, body_html=body,
                        next_attempt_at=now or utcnow(), created_at=now or utcnow()))
    return True


def _to_customer(s: Session, ev: Event, claim: Claim, key: str, kind: str, lines: list[str],
                 t: i18n.Translator) -> None:
    """A mail to the customer: ``lines`` written in ``t``'s language (the claim's)."""
    enqueue(s, key=key, kind=kind, to=claim.email, claim=claim,
            link=claim_link(claim.access_token, t.lang), now=ev.at, lines=lines, t=t,
            order_link=order_link_for(s, claim.order, t.lang))


def _details(ev: Event) -> dict:
    return json.loads(ev.details or "{}")


# --- event handlers -----------------------------------------------------------------------------

def on_claim_filed(s: Session, ev: Event, claim: Claim) -> None:
    issue = ISSUE_TYPES[claim.issue_type].label
    t = translator_for(claim)
    filed = windows.local_date(claim.created_at or ev.at, settings_row(s).timezone)
    _to_customer(s, ev, claim, f"received:{claim.id}", "claim_received", [
        t("Thank you — we received your claim {ref} ({issue}).", ref=claim.reference,
          issue=t(issue)),
        t("Filed on {date}.", date=filed),
        t("Our team reviews every claim, usually within 2 business days. If we need anything "
          "else we'll ask you on your claim page, and we'll email you when there's a decision.")],
        t)
    for u in s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.notify_new_claims,
                                               StaffUser.email != "")):
        enqueue(s, key=f"staffnew:{claim.id}:{u.id}", kind="staff_new_claim", to=u.email,
                claim=claim, issue=issue, now=ev.at, lines=[
                    f"A new claim {claim.reference} ({issue}, "
                    f"{format_minor(claim.claimed_cents, claim.order.currency)}) was filed.",
                    "The customer wrote:", claim.description or "(no comments)"])


def on_hold_placed(s: Session, ev: Event, claim: Claim) -> None:
    """Tell the agent on the claim (or, with nobody assigned, the staff who follow new claims)
    that live tracking put it on hold."""
    assignee = s.get(StaffUser, claim.assignee_id) if claim.assignee_id else None
    people = [assignee] if assignee is not None and assignee.active and assignee.email else list(
        s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.notify_new_claims,
                                          StaffUser.email != "")))
    reason = _details(ev).get("reason", "")
    for u in people:
        enqueue(s, key=f"hold:{ev.claim_id}:{ev.id}:{u.id}", kind="staff_hold", to=u.email,
                claim=claim, now=ev.at, lines=[
                    f"Claim {claim.reference} ({ISSUE_TYPES[claim.issue_type].label}) is on hold.",
                    reason, "Check the tracking on the claim page, then release the hold or "
                    "decide."])


def on_dispute(s: Session, ev: Event, claim: Claim) -> None:
    """Tell the owners that a dispute (chargeback) landed on the order of an open claim (now on
    hold) or of an approved one (the shop may be paying twice). Once per claim and dispute."""
    d = _details(ev)
    order = claim.order
    what = disputes.describe(d.get("kind", ""), d.get("reason", ""), d.get("status", ""))
    amount = (f" The bank disputes {format_minor(order.dispute_amount_minor, order.currency)}."
              if order.dispute_amount_minor is not None else "")
    if ev.action == AuditAction.DISPUTE_FLAGGED:
        lines = [f"Claim {claim.reference} on order {order.name} was already approved, and the "
                 "customer has now disputed the payment with their bank: the shop may be paying "
                 "twice.", what + amount,
                 "Open the claim: its evidence pack is the evidence for the dispute."]
    else:
        lines = [f"Claim {claim.reference} on order {order.name} is on hold: the customer has "
                 "disputed the payment with their bank.", what + amount,
                 "Approving waits until the dispute closes or you release the hold on the claim "
                 "page; its evidence pack is the evidence for the dispute."]
    for u in s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.role == Role.OWNER,
                                               StaffUser.email != "")):
        enqueue(s, key=f"dispute:{claim.id}:{d.get('dispute_id', '')}:{u.id}", kind="staff_dispute",
                to=u.email, claim=claim, now=ev.at, lines=lines)


def _message_body(s: Session, ev: Event) -> tuple[int, str]:
    mid = _details(ev).get("message_id")
    msg = s.get(Message, mid) if mid is not None else None
    return mid, msg.body if msg is not None else ""


def on_info_requested(s: Session, ev: Event, claim: Claim) -> None:
    mid, body = _message_body(s, ev)
    t = translator_for(claim)
    _to_customer(s, ev, claim, f"info:{claim.id}:{mid}", "info_requested", [
        t("We need a little more information to decide on your claim:"), body,
        t("Reply on your claim page (you can add photos there).")], t)


def on_staff_message(s: Session, ev: Event, claim: Claim) -> None:
    mid, body = _message_body(s, ev)
    t = translator_for(claim)
    _to_customer(s, ev, claim, f"msg:{claim.id}:{mid}", "new_message",
                 [t("You have a new message about your claim:"), body], t)


def approval_lines(claim: Claim, decision_id: int, t: i18n.Translator | None = None) -> list[str]:
    """What an approval grants, in ``t``'s language (the claim's when None), amounts in the
    order's currency."""
    t = t or translator_for(claim)
    currency = claim.order.currency
    lines = [t("Good news: your claim was approved.")]
    for r in claim.resolutions:
        if r.decision_id != decision_id or r.voided_at is not None:
            continue
        if r.kind == ResolutionKind.REFUND:
            lines.append(t("Refund of {amount} to your original payment method.",
                           amount=Amount(r.amount_cents, currency)))
        elif r.kind == ResolutionKind.STORE_CREDIT:
            lines.append(t("Store credit of {amount}: use code {code} at checkout.",
                           amount=Amount(credit_with_bonus(r.amount_cents, r.bonus_pct), currency),
                           code=r.store_credit_code or ""))
        else:
            lines.append(t("A replacement of your items is on its way."))
    return lines


def on_decision(s: Session, ev: Event, claim: Claim) -> None:
    decision_id = _details(ev).get("decision_id")
    decision = s.get(Decision, decision_id) if decision_id is not None else None
    if decision is None:
        return
    t = translator_for(claim)
    if decision.outcome == "approved":
        lines = approval_lines(claim, decision.id, t)
        granted = [(r.kind, r.amount_cents) for r in claim.resolutions
                   if r.decision_id == decision.id]
        if is_partial(granted, claim.claimed_cents):
            lines.append(t("Why this amount: {note}", note=decision.note or ""))
    else:
        explanation = DENIAL_EXPLANATIONS.get(decision.reason_code, "")
        why = " ".join(x for x in (t(explanation) if explanation else "", decision.note) if x)
        lines = [t("We're sorry: we couldn't approve your claim."),
                 why or t("Reply on your claim page if you have questions.")]
    # One message per decision that stands: an earlier decision mail not sent yet is withdrawn;
    # one already sent is followed by "the decision was updated".
    earlier = s.scalars(select(OutboxMessage).where(
        OutboxMessage.claim_id == claim.id,
        OutboxMessage.kind.in_(("decision", "decision_updated")))).all()
    for mail in earlier:
        if mail.status == "pending":
            mail.status = "withdrawn"
    kind = "decision_updated" if any(m.status in ("sent", "sending") for m in earlier) else "decision"
    if kind == "decision_updated":
        lines = [t("The store updated its decision on your claim."), *lines]
    _to_customer(s, ev, claim, f"decision:{claim.id}:{decision.id}", kind, lines, t)


def on_reminder(s: Session, ev: Event, claim: Claim) -> None:
    t = translator_for(claim)
    _to_customer(s, ev, claim, f"reminder:{claim.id}:{_details(ev).get('waiting_since_event')}",
                 "reminder", [
                     t("We're still waiting for your reply to decide on your claim."),
                     t("If we don't hear from you, the claim will be closed; you can reopen it by "
                       "replying while the filing window is open.")], t)


def on_auto_closed(s: Session, ev: Event, claim: Claim) -> None:
    t = translator_for(claim)
    _to_customer(s, ev, claim, f"autoclosed:{claim.id}:{_details(ev).get('waiting_since_event')}",
                 "auto_closed", [
                     t("We closed your claim because we didn't hear back."),
                     t("You can reopen it by replying on your claim page while the filing window "
                       "is open.")], t)


# --- the outbox, for the staff Outbox page ------------------------------------------------------

@dataclass(frozen=True)
class OutboxRow:
    id: int
    to_addr: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    last_error: str
    body_text: str


def list_outbox(engine: Engine, limit: int = 200) -> list[OutboxRow]:
    with read_session(engine) as s:
        return [OutboxRow(m.id, m.to_addr, m.subject, m.status, m.attempts, m.created_at,
                          m.last_error, m.body_text)
                for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit))]

