"""Signing a claim: drawn or typed, and the accuracy statement."""
from __future__ import annotations

from .errors import SignatureInvalid
from .messages import Msg, N_
from .text import strip_controls
from .vocabulary import SignatureKind

ACCURACY_STATEMENT = N_("I confirm the information in this claim is accurate.")
MIN_INK_PIXELS = 40
MAX_NAME_CHARS = 200


def drawn_signature_required(order_total_cents: int, threshold_cents: int) -> bool:
    return threshold_cents > 0 and order_total_cents > threshold_cents


def signature_modes(order_total_cents: int, threshold_cents: int) -> list[str]:
    """How a customer may sign this order's claim, the preferred way first."""
    if drawn_signature_required(order_total_cents, threshold_cents):
        return [SignatureKind.DRAWN]
    return [SignatureKind.DRAWN, SignatureKind.TYPED]


def clean_signature_name(typed_name: str | None) -> str:
    return strip_controls(typed_name).strip()[:MAX_NAME_CHARS]


def check_signature(*, kind: str, typed_name: str = "", drawn_ink_pixels: int = 0,
                    accurate_confirmed: bool, order_total_cents: int, threshold_cents: int,
                    min_ink_pixels: int = MIN_INK_PIXELS, filed_by_staff: bool = False) -> None:
    """A claim needs a real signature and the accuracy tick.

    ``drawn_ink_pixels`` is how much of the canvas carries ink: a blank canvas, or a stray tap,
    is not a signature.
    """
    if not accurate_confirmed:
        raise SignatureInvalid(N_("Please tick the box to confirm the information is accurate."))
    if kind == SignatureKind.TYPED:
        # Staff filing for a customer on the phone can't collect a drawing; they sign with the
        # customer's name and the claim records who filed it.
        if drawn_signature_required(order_total_cents, threshold_cents) and not filed_by_staff:
            raise SignatureInvalid(N_("For an order of this value, please draw your signature; "
                                      "a typed name isn't enough."))
        name = strip_controls(typed_name).strip()
        if len(name) < 2 or not any(ch.isalpha() for ch in name):
            raise SignatureInvalid(N_("Please type your full name to sign."))
        if len(name) > MAX_NAME_CHARS:
            raise SignatureInvalid(Msg.of(N_("Your name can be at most {n} characters."),
                                          n=MAX_NAME_CHARS))
        return
    if kind == SignatureKind.DRAWN:
        if drawn_ink_pixels < min_ink_pixels:
            raise SignatureInvalid(N_("The signature box is empty. Please sign with your finger or "
                                      "mouse."))
        return
    raise SignatureInvalid(N_("Please sign the claim."))
