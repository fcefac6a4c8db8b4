"""RFC 822 mails written for the email-reply tests, in the shapes real clients send: Gmail, Outlook
and Apple Mail replies (with their quoted history and signatures) in English, Spanish, French and
German, an HTML-only reply, a reply with a photo, an auto-reply, a bounce (DSN)."""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

DATE = datetime(2026, 11, 21, 16, 0, tzinfo=timezone.utc)

# (new text, Gmail attribution, Outlook header block, Apple attribution, signature, phone line)
LANGS = {
    "en": ("The label was torn off, here is what is left of it.",
           "On Sat, Nov 21, 2026 at 3:00 PM Our Store <{shop}> wrote:",
           "From: Our Store <{shop}>\nSent: Saturday, November 21, 2026 3:00 PM\nTo: {me}\n"
           "Subject: Our Store needs more information for claim {ref}",
           "On 21 Nov 2026, at 15:00, Our Store <{shop}> wrote:",
           "Best regards,\nSam Jones", "Sent from my iPhone"),
    "es": ("La etiqueta estaba rota, esto es lo que queda.",
           "El sáb, 21 nov 2026 a las 15:00, Our Store (<{shop}>) escribió:",
           "De: Our Store <{shop}>\nEnviado: sábado, 21 de noviembre de 2026 15:00\nPara: {me}\n"
           "Asunto: Our Store necesita más información sobre la reclamación {ref}",
           "El 21 nov 2026, a las 15:00, Our Store <{shop}> escribió:",
           "Saludos,\nSam Jones", "Enviado desde mi iPhone"),
    "fr": ("L'étiquette était déchirée, voici ce qu'il en reste.",
           "Le sam. 21 nov. 2026 à 15:00, Our Store <{shop}> a écrit :",
           "De : Our Store <{shop}>\nEnvoyé : samedi 21 novembre 2026 15:00\nÀ : {me}\n"
           "Objet : Our Store a besoin de plus d'informations pour la réclamation {ref}",
           "Le 21 nov. 2026 à 15:00, Our Store <{shop}> a écrit :",
           "Cordialement,\nSam Jones", "Envoyé de mon iPhone"),
    "de": ("Das Etikett war abgerissen, hier ist der Rest davon.",
           "Am Sa., 21. Nov. 2026 um 15:00 Uhr schrieb Our Store <{shop}>:",
           "Von: Our Store <{shop}>\nGesendet: Samstag, 21. November 2026 15:00\nAn: {me}\n"
           "Betreff: Our Store braucht mehr Informationen zur Reklamation {ref}",
           "Am 21.11.2026 um 15:00 schrieb Our Store <{shop}>:",
           "Mit freundlichen Grüßen\nSam Jones", "Von meinem iPhone gesendet"),
}
QUOTED = ["We need a little more information to decide on your claim:", "The label please",
          "View your claim: http://localhost:8501/my-claim?token=abc"]


def _headers(em: EmailMessage, *, sender: str, to: str, subject: str, in_reply_to: str = "",
             message_id: str | None = None, extra: dict | None = None) -> None:
    em["From"] = f"Sam Jones <{sender}>"
    em["To"] = to
    em["Subject"] = subject
    em["Date"] = format_datetime(DATE)
    em["Message-ID"] = message_id or make_msgid(domain="mail.customer.example")
    if in_reply_to:
        em["In-Reply-To"] = in_reply_to
        em["References"] = in_reply_to
    for k, v in (extra or {}).items():
        em[k] = v


def client_reply(style: str, lang: str, *, sender: str, to: str, ref: str = "CLM-TEST",
                 in_reply_to: str = "", message_id: str | None = None) -> tuple[bytes, str]:
    """A reply as ``style`` (gmail | outlook | apple) writes it in ``lang``; returns (the mail,
    the text the customer actually wrote)."""
    new, gmail, outlook, apple, signature, phone = LANGS[lang]
    fill = dict(shop=to, me=sender, ref=ref)
    if style == "gmail":
        body = (f"{new}\n\n{signature}\n\n{gmail.format(**fill)}\n"
                + "".join(f"> {line}\n>\n" for line in QUOTED))
    elif style == "outlook":
        body = (f"{new}\n\n{signature}\n\n" + "_" * 32 + "\n" + outlook.format(**fill) + "\n\n"
                + "\n\n".join(QUOTED) + "\n")
    else:
        body = (f"{new}\n\n{phone}\n\n> {apple.format(**fill)}\n>\n"
                + "".join(f"> {line}\n" for line in QUOTED))
    em = EmailMessage()
    _headers(em, sender=sender, to=to, subject=f"Re: claim {ref}", in_reply_to=in_reply_to,
             message_id=message_id)
    em.set_content(body)
    return em.as_bytes(), new


def html_only_reply(*, sender: str, to: str) -> tuple[bytes, str]:
    em = EmailMessage()
    _headers(em, sender=sender, to=to, subject="Re: your claim")
    em.set_content(
        '<html><body><div dir="ltr">The parcel <b>never</b> arrived &amp; the tracking is stuck.'
        '</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Sat, Nov 21, '
        '2026 at 3:00 PM Our Store wrote:<br></div><blockquote class="gmail_quote">'
        '<p>We need a little more information</p></blockquote></div></body></html>',
        subtype="html")
    return em.as_bytes(), "The parcel never arrived & the tracking is stuck."


def with_attachments(*, sender: str, to: str, text: str, files: list[tuple[str, str, bytes]]
                     ) -> bytes:
    em = EmailMessage()
    _headers(em, sender=sender, to=to, subject="Re: photos")
    em.set_content(text + "\n\nOn Sat, Nov 21, 2026 at 3:00 PM Our Store <x@y> wrote:\n> old\n")
    for name, ctype, data in files:
        main, sub = ctype.split("/")
        em.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return em.as_bytes()


def plain(*, sender: str, to: str, text: str, subject: str = "Hello", extra: dict | None = None,
          in_reply_to: str = "", message_id: str | None = None) -> bytes:
    em = EmailMessage()
    _headers(em, sender=sender, to=to, subject=subject, extra=extra, in_reply_to=in_reply_to,
             message_id=message_id)
    em.set_content(text)
    return em.as_bytes()


def auto_reply(*, sender: str, to: str) -> bytes:
    return plain(sender=sender, to=to, subject="Out of office",
                 text="I'm away until Monday and will read your mail when I'm back.",
                 extra={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"})


def bounce(*, to: str, original: str) -> bytes:
    """A delivery status notification (RFC 3464) as a mail server sends it."""
    em = EmailMessage()
    em["From"] = "Mail Delivery Subsystem <mailer-daemon@mx.customer.example>"
    em["To"] = to
    em["Subject"] = "Delivery Status Notification (Failure)"
    em["Message-ID"] = make_msgid(domain="mx.customer.example")
    em.set_content(f"Your message to {original} couldn't be delivered.")
    em.make_mixed()
    report = EmailMessage()
    report.set_content(f"Final-Recipient: rfc822; {original}\nAction: failed\nStatus: 5.1.1\n")
    em.attach(report)
    em.replace_header("Content-Type", 'multipart/report; report-type=delivery-status')
    em.set_boundary("dsn-boundary-1")
    return em.as_bytes()
