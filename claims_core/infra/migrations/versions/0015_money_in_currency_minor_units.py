"""money in the currency's own minor units: amounts of orders in a currency without two decimals
(JPY, KWD…) were kept as hundredths; they become yen, fils… (the roll-ups are rebuilt after)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 17:20:00
"""
from alembic import op
import sqlalchemy as sa

from claims_core.domain.money import CURRENCY_EXPONENTS


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# (table, money columns, how a row finds its order's currency)
_ORDER = "SELECT id FROM orders WHERE currency = :c"
_CLAIM = f"SELECT id FROM claims WHERE order_id IN ({_ORDER})"
TABLES = (
    ("orders", ("subtotal_cents", "shipping_cents", "tax_cents", "total_cents", "protection_fee_cents",
                "refunded_cents"), "currency = :c"),
    ("line_items", ("unit_price_cents", "discount_cents"), f"order_id IN ({_ORDER})"),
    ("order_refunds", ("amount_cents",), f"order_id IN ({_ORDER})"),
    ("claims", ("claimed_cents",), f"order_id IN ({_ORDER})"),
    ("claim_items", ("unit_cents",), f"claim_id IN ({_CLAIM})"),
    ("resolutions", ("amount_cents",), f"claim_id IN ({_CLAIM})"),
    # the store's own amounts are in the store's currency
    ("store_settings", ("signature_threshold_cents", "reship_shipping_cents"), "currency = :c"),
    ("auto_approve_rules", ("max_cents",),
     "(SELECT currency FROM store_settings WHERE id = 1) = :c"),
)


def _convert(factor_sql: str) -> None:
    bind = op.get_bind()
    for currency, exp in CURRENCY_EXPONENTS.items():
        if exp == 2:
            continue
        for table, cols, where in TABLES:
            sets = ", ".join(f"{c} = CAST(ROUND({c} {factor_sql.format(d=10 ** abs(exp - 2))}) AS BIGINT)"
                             if exp < 2 else f"{c} = {c} * {10 ** (exp - 2)}" for c in cols)
            bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {where}"), {"c": currency})


def upgrade() -> None:
    _convert("/ {d}.0")


def downgrade() -> None:
    bind = op.get_bind()
    for currency, exp in CURRENCY_EXPONENTS.items():
        if exp == 2:
            continue
        for table, cols, where in TABLES:
            sets = ", ".join(f"{c} = {c} * {10 ** (2 - exp)}" if exp < 2
                             else f"{c} = CAST(ROUND({c} / {10 ** (exp - 2)}.0) AS BIGINT)" for c in cols)
            bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {where}"), {"c": currency})
