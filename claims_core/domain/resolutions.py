"""What a customer may ask for, and what a reshipment needs from stock."""
from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import ErrorCode, ResolutionUnavailable
from .messages import N_
from .money import credit_with_bonus
from .vocabulary import RESOLUTION_LABELS, ResolutionKind


@dataclass(frozen=True)
class ResolutionOption:
    kind: str
    available: bool
    amount_cents: int
    bonus_pct: int = 0
    reason: str = ""  # why it isn't available: a catalog message (N_), "" when it is

    @property
    def label(self) -> str:
        return RESOLUTION_LABELS[self.kind]

    @property
    def credit_minor(self) -> int:
        """Store credit including the bonus."""
        return credit_with_bonus(self.amount_cents, self.bonus_pct)


def stock_key(sku: str | None, line_item_id: int) -> str:
    """The stock row a line item's units come from: its SKU. An item without a SKU gets a key of
    its own (``"line-<id>"``) that no stock row has: it can't be reshipped from stock, and two
    such items are never counted as one. The preview and the reshipment both use this key."""
    return sku or f"line-{line_item_id}"


def needed_stock(items: Iterable[tuple[str | None, int, int]]) -> dict[str, int]:
    """What a reshipment takes from stock: (sku, line item id, quantity) rows summed by
    ``stock_key``."""
    needed: dict[str, int] = {}
    for sku, line_item_id, quantity in items:
        key = stock_key(sku, line_item_id)
        needed[key] = needed.get(key, 0) + quantity
    return needed


def stock_shortfall(needed: Mapping[str, int], on_hand: Mapping[str, int]) -> list[str]:
    """SKUs whose stock can't cover what a reshipment needs."""
    return sorted(sku for sku, qty in needed.items() if on_hand.get(sku, 0) < qty)


def resolution_options(*, offer_refund: bool, offer_reshipment: bool, offer_store_credit: bool,
                       bonus_pct: int, amount_cents: int, needed_stock: Mapping[str, int],
                       on_hand: Mapping[str, int]) -> list[ResolutionOption]:
    """The resolutions this store offers, in order; reshipment is unavailable, with the reason,
    when stock can't cover the items."""
    out: list[ResolutionOption] = []
    if offer_reshipment:
        short = stock_shortfall(needed_stock, on_hand)
        out.append(ResolutionOption(
            ResolutionKind.RESHIPMENT, not short, amount_cents,
            reason="" if not short else N_("Not available: the store doesn't have enough in "
                                           "stock to send replacements right now."),
        ))
    if offer_store_credit:
        out.append(ResolutionOption(ResolutionKind.STORE_CREDIT, True, amount_cents, bonus_pct))
    if offer_refund:
        out.append(ResolutionOption(ResolutionKind.REFUND, True, amount_cents))
    return out


def check_resolution_choice(kind: str, options: Iterable[ResolutionOption]) -> ResolutionOption:
    for opt in options:
        if opt.kind == kind:
            if not opt.available:
                raise ResolutionUnavailable(opt.reason, ErrorCode.OUT_OF_STOCK)
            return opt
    raise ResolutionUnavailable(N_("Please choose one of the resolutions offered."))


def approval_can_be_undone(kinds, sent_to_shop: bool = False) -> bool:
    """An approval can be taken back while nothing has left the portal: once a replacement has
    been shipped (stock taken, a shipment made), or the refund or gift card has gone to Shopify
    (or is going right now), it stands — approving again would pay twice."""
    return ResolutionKind.RESHIPMENT not in set(kinds) and not sent_to_shop


# How a resolution is named in the store's own system (the note of a Shopify refund, gift card or
# replacement order): finds an earlier write that landed, and tells the portal's own refunds
# apart from refunds the shop made by hand.
SHOP_MARKER = re.compile(r"\bCLM-[0-9A-Z]+/R\d+\b")


def shop_marker(reference: str, resolution_id: int) -> str:
    return f"{reference}/R{resolution_id}"
