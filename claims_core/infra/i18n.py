"""The customer's language: message catalogs (gettext, via Babel) and locale formatting (CLDR).

Catalogs live in ``claims_core/locales/<lang>/LC_MESSAGES/messages.po`` (the template,
``messages.pot``, is extracted from the code: see the README). They are compiled in memory the first
time a language is used — nothing binary is committed. ``Translator(lang)`` translates a message
and formats the values in it: ``t("Refund of {amount}", amount=Amount(1250, "EUR"))`` is
"Refund of €12.50" in English and "Rückerstattung von 12,50 €" in German.

``qps`` is a pseudo-language for tests: every message comes back rewritten (accented and
bracketed), so any text on a page that isn't rewritten bypassed the catalogs.
"""
from __future__ import annotations

import copy
import gettext as _gettext
import io
import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from ..domain.messages import Amount, Msg
from ..domain.money import currency_exponent
from ..domain.windows import local_day, store_zone
from . import config

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch"}
DEFAULT = "en"
PSEUDO = "qps"
# the region each language's numbers and dates are written for when the browser doesn't say
REGIONS = {"en": "en_US", "es": "es_ES", "fr": "fr_FR", "de": "de_DE", PSEUDO: "en_US"}


def supported(lang: str | None) -> str | None:
    """The app's language for a tag like "de", "de-AT" or "es_MX" (None if it has none)."""
    if not lang:
        return None
    base = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    if base == PSEUDO:
        return PSEUDO
    return base if base in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The first language of an ``Accept-Language`` header the app speaks (by q-value)."""
    prefs = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        if tag and q > 0:
            prefs.append((-q, i, tag))
    for _q, _i, tag in sorted(prefs):
        lang = supported(tag)
        if lang and lang != PSEUDO:
            return lang
    return None


def negotiate(asked: str | None, browser_locale: str | None, accept_language: str | None,
              store_default: "str | None | Callable[[], str | None]") -> str:
    """Which language a page speaks: ``?lang=``, then the browser's preference, then the store's
    default language, then English. The pseudo-language only when ``CLAIMS_PSEUDO_LANGUAGE=1``
    (the tests' app)."""
    asked_lang = supported(asked)
    if asked_lang == PSEUDO and not config.pseudo_language_enabled():
        asked_lang = None
    chosen = asked_lang or supported(browser_locale) or from_accept_language(accept_language)
    if chosen:
        return chosen
    if callable(store_default):  # read only when the visitor's own choice gives none
        store_default = store_default()
    return supported(store_default) or DEFAULT


def region_of(lang: str, browser_locale: str | None = None) -> str:
    """The CLDR locale to format numbers and dates with: the browser's own region when it speaks
    this language (en-GB writes 29/11/2026), else the language's usual one."""
    if browser_locale and supported(browser_locale) == lang and lang != PSEUDO:
        try:
            return str(Locale.parse(browser_locale.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            pass
    return REGIONS.get(lang, "en_US")


# --- catalogs -------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def catalog(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of a language (English is the source: no catalog)."""
    path = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not path.exists():
        return _gettext.NullTranslations()
    with path.open("rb") as f:
        po = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, po, use_fuzzy=False)  # a fuzzy entry is not a translation
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


_PSEUDO_MAP = str.maketrans("aceinoruyACEINORUY", "àçéîñöřûýÀÇÉÎÑÖŘÛÝ")


def pseudo(text: str) -> str:
    """A message rewritten so a person can still read it but a test can tell it was translated:
    letters accented (placeholders and markup kept), the whole bracketed."""
    parts = re.split(r"(\{[^{}]*\}|\*\*|\n)", text)
    return "⟦" + "".join(p if re.fullmatch(r"\{[^{}]*\}|\*\*|\n", p or "x") else p.translate(_PSEUDO_MAP)
                         for p in parts) + "⟧"


class Translator:
    """Messages and formatting in one language (and its region's conventions), dates in the
    store's time zone ``tz`` (a moment is shown as the store's local day, like every date a
    person reads: ``domain.windows.local_day``)."""

    def __init__(self, lang: str = DEFAULT, region: str | None = None, tz: str | None = None):
        self.lang = supported(lang) or DEFAULT
        self.locale = region or REGIONS.get(self.lang, "en_US")
        self.tz = tz or "UTC"
        self._catalog = catalog(self.lang)

    # messages
    def template(self, message: str) -> str:
        if not message:  # gettext's "" is the catalog's header
            return ""
        if self.lang == PSEUDO:
            return pseudo(message)
        return self._catalog.gettext(message)

    def __call__(self, message: str | Msg, **params) -> str:
        """The message in this language, its ``{placeholders}`` filled in, values formatted."""
        if isinstance(message, Msg):
            params = {**dict(message.params), **params}
            message = message.template
        text = self.template(message)
        if not params:  # nothing to fill in: the text as it is (braces included)
            return text
        values = {k: self.value(v) for k, v in params.items()}
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):  # a broken translation: the English, not a crash
            return message.format(**values)

    def plural(self, singular: str, plural: str, n: int, **params) -> str:
        if self.lang == PSEUDO:
            text = pseudo(singular if n == 1 else plural)
        else:
            text = self._catalog.ngettext(singular, plural, n)
        return text.format(n=self.number(n), **{k: self.value(v) for k, v in params.items()})

    def value(self, v) -> str:
        if isinstance(v, Msg):
            return self(v)
        if isinstance(v, Amount):
            return self.money(v.minor_units, v.currency)
        if isinstance(v, date):  # a day, or a moment (shown as the store's local day)
            return self.date(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return self.number(v)
        return str(v)

    # formatting
    def money(self, minor_units: int, currency: str = "USD") -> str:
        """An amount in the currency's minor units (cents, yen, fils), as the locale writes it."""
        currency = (currency or "USD").upper()
        exp = currency_exponent(currency)
        amount = Decimal(int(minor_units)).scaleb(-exp)
        # the locale's currency pattern with the currency's ISO 4217 decimals (the app's, which
        # Shopify uses too), not CLDR's own idea of them (IQD 0, HUF 0)
        locale = Locale.parse(self.locale)
        pattern = copy.copy(locale.currency_formats["standard"])
        pattern.frac_prec = (exp, exp)
        return pattern.apply(amount, locale, currency=currency, currency_digits=False)

    def date(self, d: date | datetime, fmt: str = "long") -> str:
        """A day as the locale writes it; a moment is first turned into the store's local day."""
        return format_date(local_day(d, self.tz), format=fmt, locale=self.locale)

    def datetime(self, dt: datetime, tz=None, fmt: str = "medium") -> str:
        """A moment as the locale writes it, in the store's zone unless ``tz`` says otherwise."""
        return format_datetime(dt, format=fmt, tzinfo=tz or store_zone(self.tz), locale=self.locale)

    def number(self, n) -> str:
        return format_decimal(n, locale=self.locale)

    @property
    def language_name(self) -> str:
        return LANGUAGES.get(self.lang, LANGUAGES[DEFAULT])


def translator(lang: str | None, region: str | None = None, tz: str | None = None) -> Translator:
    """The translator for a language (and region); ``tz`` is the store's time zone, in which a
    moment's day is shown (UTC when not given)."""
    return _translator(supported(lang) or DEFAULT, region, tz or "UTC")


@lru_cache(maxsize=64)
def _translator(lang: str, region: str | None, tz: str) -> Translator:
    return Translator(lang, region, tz)


def is_known_currency(code: str) -> bool:
    """An ISO 4217 code CLDR knows (USD, EUR, JPY…)."""
    from babel.numbers import list_currencies  # noqa: PLC0415
    return (code or "").upper() in list_currencies()


def language_name(lang: str | None) -> str:
    """The language's own name ("Deutsch"), for staff pages and the picker."""
    return LANGUAGES.get(supported(lang) or DEFAULT, LANGUAGES[DEFAULT])
