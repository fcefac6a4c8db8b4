"""What the Settings tabs that edit the store's settings share: a number field whose bounds are
the service's (``services.settings.RANGES``, the one home of each setting's range), and saving a
change (``services.settings.update_settings``, one call) with the answer shown on the page."""
from __future__ import annotations

from claims_core.services import settings as store_settings
from views import ui


def bounds(field: str, unit: int = 1) -> tuple[int, int]:
    """The smallest and largest value the service accepts for ``field``, in ``unit``s (a size in
    bytes shown in MB: ``unit=MEGABYTE``)."""
    lo, hi, _label = store_settings.RANGES[field]
    return -(-lo // unit), hi // unit


def number(where, label: str, field: str, value: int, *, key: str, unit: int = 1, **kwargs) -> int:
    """A whole-number field for the setting ``field``, held to the service's range."""
    lo, hi = bounds(field, unit)
    return int(where.number_input(label, lo, hi, min(max(value // unit, lo), hi), key=key,
                                  **kwargs)) * unit


def amount(where, label: str, field: str, currency: str, value_minor: int, *, key: str,
           step: float = 1.0) -> int:
    """A money setting in the store's currency, up to the service's largest value."""
    return ui.amount_input(where, label, currency, value_minor, bounds(field)[1], key=key,
                           step=step)


def save(engine, who, changes: dict, what: str) -> None:
    """Save a change to the store's settings: "<what> saved.", "Nothing changed." or why not."""
    ui.settings_act(lambda: store_settings.update_settings(engine, who.actor, changes),
                    lambda changed: f"{what} saved." if changed else "Nothing changed.")
