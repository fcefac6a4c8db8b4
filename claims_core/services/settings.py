"""The store's settings, in one module: read them, validate a change, save it with a before/after
event, set the logo. (The row and its defaults are ``infra.models.settings_row``.)"""
from __future__ import annotations

import io
import json
import re
from typing import Any

from PIL import Image, UnidentifiedImageError

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..domain.eligibility import MAX_PHOTO_BYTES, MEGABYTE
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.text import clean_comment
from ..domain.vocabulary import AuditAction
from ..infra import i18n, rollups
from ..infra.db import read_session
from ..infra.models import StoreSettings, ensure_settings_row, settings_row
from .events import record_event
from .unit_of_work import transactional

EDITABLE = {
    "name": str, "accent_color": str, "support_email": str, "intro_text": str, "timezone": str,
    "filing_window_days": int, "lost_wait_days": int, "offer_refund": bool,
    "offer_reshipment": bool, "offer_store_credit": bool, "store_credit_bonus_pct": int,
    "max_photos": int, "max_photo_bytes": int, "signature_threshold_cents": int,
    "protection_pattern": str, "response_target_hours": int, "lookup_max_misses": int,
    "lookup_window_minutes": int, "reminder_after_days": int, "close_after_days": int,
    "target_loss_ratio_pct": int, "credit_cost_pct": int, "reship_cost_pct": int,
    "reship_shipping_cents": int, "default_language": str, "currency": str,
    "keep_photo_hashes": bool, "digest_hour": int,
}
# the store's own texts a customer reads, each writable per language (``StoreSettings.texts``)
STORE_TEXTS = ("intro", "policy", "support_note")
RANGES = {
    "filing_window_days": (1, 3650, "The filing window"),
    "lost_wait_days": (0, 365, "The waiting period for “lost”"),
    "store_credit_bonus_pct": (0, 100, "The store-credit bonus"),
    "max_photos": (1, 20, "The number of photos"),
    "max_photo_bytes": (MEGABYTE, MAX_PHOTO_BYTES, "The photo size limit"),
    "signature_threshold_cents": (0, 100_000_000, "The signature threshold"),
    "response_target_hours": (1, 24 * 30, "The response target"),
    "digest_hour": (0, 23, "The digest hour"),
    "lookup_max_misses": (3, 100, "The lookup limit"),
    "lookup_window_minutes": (1, 1440, "The lookup window"),
    "reminder_after_days": (1, 60, "The reminder delay"),
    "close_after_days": (2, 120, "The auto-close delay"),
    "target_loss_ratio_pct": (1, 200, "The target loss ratio"),
    "credit_cost_pct": (0, 100, "The cost of store credit"),
    "reship_cost_pct": (0, 100, "The cost of goods of a reshipment"),
    "reship_shipping_cents": (0, 10_000_000, "The shipping cost of a reshipment"),
}
MAX_LOGO_BYTES = 1024 * 1024


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in EDITABLE:
            raise InvalidInput(f"Unknown setting {key}.", ErrorCode.SETTING_UNKNOWN)
        kind = EDITABLE[key]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{RANGES[key][2]} must be a whole number.",
                                   ErrorCode.SETTING_INVALID)
            lo, hi, label = RANGES[key]
            if not lo <= value <= hi:
                raise InvalidInput(f"{label} must be between {lo:,} and {hi:,}.",
                                   ErrorCode.SETTING_INVALID)
        elif kind is bool:
            value = bool(value)
        else:
            value = (value or "").strip()
        out[key] = value
    if "name" in out and not 1 <= len(out["name"]) <= 200:
        raise InvalidInput("The store name must be 1 to 200 characters.", ErrorCode.SETTING_INVALID)
    if "accent_color" in out and not re.fullmatch(r"#[0-9a-fA-F]{6}", out["accent_color"]):
        raise InvalidInput("The accent colour must look like #0f766e.", ErrorCode.SETTING_INVALID)
    if "support_email" in out and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", out["support_email"]):
        raise InvalidInput("The support email doesn't look like an email address.",
                           ErrorCode.SETTING_INVALID)
    if "default_language" in out and out["default_language"] not in i18n.LANGUAGES:
        raise InvalidInput(f"Choose one of the portal's languages: {', '.join(i18n.LANGUAGES)}.",
                           ErrorCode.SETTING_INVALID)
    if "currency" in out:
        out["currency"] = out["currency"].upper()
        if not re.fullmatch(r"[A-Z]{3}", out["currency"]) or not i18n.is_known_currency(out["currency"]):
            raise InvalidInput("The currency must be an ISO 4217 code, e.g. USD, EUR or JPY.",
                               ErrorCode.SETTING_INVALID)
    if "intro_text" in out:
        out["intro_text"] = clean_comment(out["intro_text"], "The intro text")
    if "protection_pattern" in out:
        try:
            re.compile(out["protection_pattern"])
        except re.error as e:
            raise InvalidInput(f"The protection pattern isn't a valid pattern: {e}.",
                               ErrorCode.SETTING_INVALID)
        if not out["protection_pattern"]:
            raise InvalidInput("The protection pattern can't be empty.", ErrorCode.SETTING_INVALID)
    if "timezone" in out:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(out["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"Unknown time zone “{out['timezone']}” (e.g. America/New_York).",
                               ErrorCode.SETTING_INVALID)
    if {"offer_refund", "offer_reshipment", "offer_store_credit"} <= out.keys() and not (
            out["offer_refund"] or out["offer_reshipment"] or out["offer_store_credit"]):
        raise InvalidInput("Offer at least one resolution.", ErrorCode.SETTING_INVALID)
    if {"reminder_after_days", "close_after_days"} <= out.keys() and \
            out["close_after_days"] <= out["reminder_after_days"]:
        raise InvalidInput("Close a waiting claim later than its reminder is sent.",
                           ErrorCode.SETTING_INVALID)
    return out


def texts_of(settings: StoreSettings) -> dict[str, dict[str, str]]:
    """The store's texts per language ({"de": {"intro": …}}); a broken value reads as none."""
    try:
        data = json.loads(settings.texts or "{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {lang: {k: v for k, v in (texts or {}).items() if k in STORE_TEXTS and isinstance(v, str)}
            for lang, texts in data.items() if lang in i18n.LANGUAGES and isinstance(texts, dict)}


def store_text(settings: StoreSettings, field: str, lang: str) -> str:
    """One of the store's texts in ``lang``; else in the store's default language; else (the
    intro) the intro text saved before texts had languages."""
    texts = texts_of(settings)
    for code in (lang, settings.default_language or i18n.DEFAULT):
        value = texts.get(code, {}).get(field, "")
        if value.strip():
            return value
    return settings.intro_text if field == "intro" else ""


def save_store_texts(engine: Engine, actor: str, lang: str, values: dict[str, str]) -> list[str]:
    """Save the store's texts in one language (empty: fall back to the default language's)."""
    if lang not in i18n.LANGUAGES:
        raise InvalidInput(f"Choose one of the portal's languages: {', '.join(i18n.LANGUAGES)}.",
                           ErrorCode.SETTING_INVALID)
    clean = {}
    for field in STORE_TEXTS:
        clean[field] = clean_comment(values.get(field, ""), f"The {field.replace('_', ' ')}")
    return _save_texts(engine, actor, lang, clean)


@transactional
def _save_texts(s: Session, actor: str, lang: str, clean: dict[str, str]) -> list[str]:
    row: StoreSettings = ensure_settings_row(s)
    texts = texts_of(row)
    before = texts.get(lang, {})
    changed = [k for k, v in clean.items() if before.get(k, "") != v]
    if not changed:
        return []
    texts[lang] = {k: v for k, v in clean.items() if v}
    row.texts = json.dumps(texts, ensure_ascii=False, sort_keys=True)
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"texts": lang, "changed": changed})
    return changed


def load_settings(engine: Engine) -> StoreSettings:
    """The settings as they are now (a detached copy)."""
    with read_session(engine) as s:
        row = settings_row(s)
        s.expunge_all()
        return row


def update_settings(engine: Engine, actor: str, changes: dict[str, Any]) -> list[str]:
    """Save the changed settings; returns the names of what changed."""
    return save_changes(engine, actor, validate(changes))


@transactional
def save_changes(s: Session, actor: str, clean: dict[str, Any]) -> list[str]:
    """Write already-validated settings and record one event with what changed (before/after);
    every settings form (claim rules, privacy, recoveries…) saves through here."""
    row: StoreSettings = ensure_settings_row(s)
    before = {k: getattr(row, k) for k in clean}
    changed = [k for k, v in clean.items() if before[k] != v]
    if "timezone" in changed and not rollups.zone_known(s, clean["timezone"]):
        raise InvalidInput(f"The database doesn't know the time zone “{clean['timezone']}”.",
                           ErrorCode.SETTING_INVALID)
    for k in changed:
        setattr(row, k, clean[k])
    if "timezone" in changed:
        # every figure counts days in the store's zone: the roll-ups move with it, in this
        # transaction (nobody reads figures in one zone over days of another)
        rollups.rebuild_in(s)
    if changed:
        record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                     details={"before": {k: before[k] for k in changed},
                              "after": {k: clean[k] for k in changed}})
    return changed


def set_logo(engine, actor: str, raw: bytes | None) -> None:
    """Store a logo (re-encoded PNG at most 256 px) or remove it with ``None``."""
    png = None
    if raw:
        if len(raw) > MAX_LOGO_BYTES:
            raise InvalidInput("The logo must be under 1 MB.", ErrorCode.LOGO_REJECTED)
        try:
            img = Image.open(io.BytesIO(raw), formats=["PNG", "JPEG", "WEBP"])
            if img.width * img.height > 16_000_000:
                raise InvalidInput("The logo image is too large.", ErrorCode.LOGO_REJECTED)
            img.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise InvalidInput("The logo must be a PNG, JPEG or WebP image.",
                               ErrorCode.LOGO_REJECTED)
        img = img.convert("RGBA")
        img.thumbnail((256, 256))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        png = buf.getvalue()
    _store_logo(engine, actor, png)


@transactional
def _store_logo(s: Session, actor: str, png: bytes | None) -> None:
    ensure_settings_row(s).logo_png = png
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"logo": "set" if png else "removed"})
