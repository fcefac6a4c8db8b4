"""Signing a claim: drawn or typed, and the accuracy statement.

Above the store's signature threshold a drawn signature is asked for, but drawing is a dragging
movement some people can't make (a screen reader, a switch, a tremor): WCAG 2.2 §2.5.7 wants a
single-pointer alternative. So a typed name is accepted there too when the customer ticks
:data:`CANNOT_DRAW_STATEMENT`; the claim records that it was signed this way
(``Claim.signature_cannot_draw``) and the statement says so."""
from __future__ import annotations

from .errors import SignatureInvalid
from .messages import Msg, N_
from .text import strip_controls
from .vocabulary import SignatureKind

ACCURACY_STATEMENT = N_("I confirm the information in this claim is accurate.")
CANNOT_DRAW_STATEMENT = N_("I can't draw a signature; my typed name is my signature.")
MIN_INK_PIXELS = 40
MAX_NAME_CHARS = 200


def drawn_signature_required(order_total_cents: int, threshold_cents: int) -> bool:
    return threshold_cents > 0 and order_total_cents > threshold_cents


def signature_modes(order_total_cents: int, threshold_cents: int) -> list[str]:
    """How a customer may sign this order's claim, the preferred way first. Typing is always
    offered; above the threshold it needs the "can't draw" statement
    (:func:`typed_needs_cannot_draw`)."""
    return [SignatureKind.DRAWN, SignatureKind.TYPED]


def typed_needs_cannot_draw(order_total_cents: int, threshold_cents: int) -> bool:
    """A typed name signs this order's claim only with :data:`CANNOT_DRAW_STATEMENT` ticked."""
    return drawn_signature_required(order_total_cents, threshold_cents)


def records_cannot_draw(kind: str, cannot_draw_confirmed: bool) -> bool:
    """What the claim records: signed by a typed name because the customer can't draw."""
    return kind == SignatureKind.TYPED and bool(cannot_draw_confirmed)


def clean_signature_name(typed_name: str | None) -> str:
    return strip_controls(typed_name).strip()[:MAX_NAME_CHARS]


def check_signature(*, kind: str, typed_name: str = "", drawn_ink_pixels: int = 0,
                    accurate_confirmed: bool, order_total_cents: int, threshold_cents: int,
                    min_ink_pixels: int = MIN_INK_PIXELS, filed_by_staff: bool = False,
                    cannot_draw_confirmed: bool = False) -> None:
    """A claim needs a real signature and the accuracy tick.

    ``drawn_ink_pixels`` is how much of the canvas carries ink: a blank canvas, or a stray tap,
    is not a signature.
    """
    if not accurate_confirmed:
        raise SignatureInvalid(N_("Please tick the box to confirm the information is accurate."))
    if kind == SignatureKind.TYPED:
        # Staff filing for a customer on the phone can't collect a drawing; they sign with the
        # customer's name and the claim records who filed it.
        # …and a customer who can't draw says so (WCAG 2.5.7: an alternative to dragging).
        if (typed_needs_cannot_draw(order_total_cents, threshold_cents) and not filed_by_staff
                and not cannot_draw_confirmed):
            raise SignatureInvalid(N_("For an order of this value, please draw your signature, "
                                      "or tick the box saying you can't draw one."))
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
