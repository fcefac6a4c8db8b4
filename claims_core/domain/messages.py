"""Words for people are messages in catalogs (``claims_core/locales``), never built in code.

The domain writes them in English as *templates* with named placeholders, marked with ``N_`` so
the catalog extractor finds them, and hands them on as a ``Msg`` (template + values). Whoever shows
one to a customer translates the template into the customer's language and formats the values in
their locale (``infra/i18n.Translator``): dates, amounts and numbers read as they do at home.
``str(msg)`` is the English text (staff pages, logs).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .currencies import format_minor


def N_(template: str) -> str:
    """Mark a message for the catalogs; returns it unchanged (translated where it is shown)."""
    return template


@dataclass(frozen=True)
class Amount:
    """A money value in a message: minor units of a currency (formatted in the reader's locale)."""
    minor_units: int
    currency: str

    def __str__(self) -> str:
        return format_minor(self.minor_units, self.currency)


@dataclass(frozen=True)
class Msg:
    """A message: its English template and the values for its placeholders."""
    template: str
    params: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, template: str, **params) -> "Msg":
        return cls(template, tuple(sorted(params.items())))

    def __str__(self) -> str:
        if not self.params:  # a template without values is the text (it may contain braces)
            return self.template
        return self.template.format(**{k: english(v) for k, v in self.params})


def english(value) -> str:
    """A placeholder's value as the English text shows it."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value:%B} {value.day}, {value.year}"
    if isinstance(value, Msg):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
