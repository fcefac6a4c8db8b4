"""Currencies: how many decimals each one's minor unit has, and amounts in English.

Imports nothing from the rest of the domain, so messages, money and errors can all use it.
"""
from __future__ import annotations

# ISO 4217 minor units of the currencies that don't have two (all others have two).
CURRENCY_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                     "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (JPY 0, USD 2, KWD 3)."""
    return CURRENCY_EXPONENTS.get((currency or "").strip().upper(), 2)


_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF ", "JPY": "¥"}


def format_minor(minor: int, currency: str = "USD") -> str:
    """An amount in the currency's minor units, in English for staff pages ("$1,234.50",
    "¥1,200"); customer pages format in the customer's locale (``infra/i18n``)."""
    symbol = _SYMBOLS.get(currency, currency + " ")
    sign = "-" if minor < 0 else ""
    exp = currency_exponent(currency)
    whole, frac = divmod(abs(int(minor)), 10 ** exp)
    return f"{sign}{symbol}{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
