"""The privacy notice a customer reads (Privacy page, linked from every public page and every
customer email): the portal's own words with the store's retention settings filled in, or the
store's own text in that language (Settings → Privacy), else in its default language."""
from __future__ import annotations

import json

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..domain import privacy
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.text import clean_comment
from ..domain.vocabulary import AuditAction
from ..infra import i18n
from ..infra.models import StoreSettings, ensure_settings_row
from .events import record_event
from .retention import policy_of
from .unit_of_work import transactional


def texts_of(settings: StoreSettings) -> dict[str, str]:
    """The store's own notices per language ({"de": "…"}); a broken value reads as none."""
    try:
        data = json.loads(getattr(settings, "privacy_texts", None) or "{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in i18n.LANGUAGES and isinstance(v, str) and v.strip()}


def own_text(settings: StoreSettings, lang: str) -> str:
    """The store's own notice in ``lang``, else in its default language; "" when it wrote none."""
    texts = texts_of(settings)
    return texts.get(lang) or texts.get(settings.default_language or i18n.DEFAULT, "")


def paragraphs(settings: StoreSettings, t: i18n.Translator) -> list[str]:
    """The notice in ``t``'s language: the store's own text (its paragraphs), else the portal's
    with the store's retention periods and contact."""
    own = own_text(settings, t.lang)
    if own:
        return [p.strip() for p in own.split("\n\n") if p.strip()]
    return paragraphs_default(settings, t)


def paragraphs_default(settings: StoreSettings, t: i18n.Translator) -> list[str]:
    """The portal's own notice, with the store's retention periods and contact."""
    policy = policy_of(settings)
    values = dict(store=settings.name, email=settings.support_email,
                  photo_months=policy["retain_photos_months"],
                  draft_days=policy["retain_draft_days"], outbox_days=policy["retain_outbox_days"],
                  mail_days=policy["retain_unmatched_mail_days"])
    return [t(p, **values) for p in privacy.NOTICE_PARAGRAPHS]


def save_own_text(engine: Engine, actor: str, lang: str, text: str) -> bool:
    """Save the store's own notice in ``lang`` (empty: the portal's notice again)."""
    if lang not in i18n.LANGUAGES:
        raise InvalidInput(f"Choose one of the portal's languages: {', '.join(i18n.LANGUAGES)}.",
                           ErrorCode.SETTING_INVALID)
    return _save(engine, actor, lang, clean_comment(text or "", "The privacy notice"))


@transactional
def _save(s: Session, actor: str, lang: str, text: str) -> bool:
    row = ensure_settings_row(s)
    texts = texts_of(row)
    if texts.get(lang, "") == text:
        return False
    if text:
        texts[lang] = text
    else:
        texts.pop(lang, None)
    row.privacy_texts = json.dumps(texts, ensure_ascii=False, sort_keys=True)
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"privacy_notice": lang, "own_text": bool(text)})
    return True
