"""Money in the currency's own minor units (yen have none, dinars three), formatted by CLDR in the
customer's locale."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from claims_core.adapters.importer import parse_money
from claims_core.domain import money
from claims_core.domain.errors import InvalidInput
from claims_core.domain.messages import Amount, Msg, N_
from claims_core.infra import i18n
from claims_core.infra.db import make_engine


@pytest.mark.parametrize("lang,minor,currency,expected", [
    ("en", 1250, "USD", "$12.50"),
    ("de", 1250, "EUR", "12,50\u00a0€"),
    ("fr", 1250, "EUR", "12,50\u00a0€"),
    ("es", 123456, "EUR", "1.234,56\u00a0€"),
    ("en", 1200, "JPY", "¥1,200"),
    ("de", 1200, "JPY", "1.200\u00a0¥"),
    ("en", 1500, "KWD", "KWD1.500"),  # CLDR puts no space after a code in en
    ("en", 1500, "IQD", "IQD1.500"),  # ISO 4217's three decimals (CLDR would round to IQD2)
    ("en", 12345, "HUF", "HUF123.45"),
])
def test_amounts_read_as_the_customer_writes_them(lang, minor, currency, expected):
    assert i18n.translator(lang).money(minor, currency) == expected


def test_english_staff_formatting_uses_the_exponent():
    assert money.format_minor(123450, "USD") == "$1,234.50"
    assert money.format_minor(1200, "JPY") == "¥1,200"
    assert money.format_minor(1500, "KWD") == "KWD 1.500"
    assert money.decimal_amount(1200, "JPY") == 1200 and str(money.decimal_amount(1999)) == "19.99"


@pytest.mark.parametrize("typed,currency,minor", [
    ("12.50", "USD", 1250), ("1200", "JPY", 1200), ("1200.4", "JPY", 1200), ("1.5", "KWD", 1500),
    ("0.005", "USD", 1),
])
def test_amounts_typed_or_imported_become_minor_units(typed, currency, minor):
    assert money.minor_from_amount(typed, currency) == minor
    assert parse_money(typed, "Total", currency) == minor


@pytest.mark.parametrize("typed", ["12,50 euros", "1e309", "NaN", "-3"])
def test_a_bad_amount_is_refused_with_its_code(typed):
    with pytest.raises(InvalidInput) as e:
        money.minor_from_amount(typed, "EUR")
    assert e.value.code == "amount_invalid"


def test_messages_format_their_values_in_the_locale():
    m = Msg.of(N_("Refund of {amount} on {day}"), amount=Amount(1250, "EUR"), day=date(2026, 11, 27))
    assert str(m) == "Refund of €12.50 on November 27, 2026"
    de = i18n.translator("de")
    assert "12,50" in de(m) and "27. November 2026" in de(m)
    assert i18n.translator("qps")(m).startswith("⟦")  # the pseudo-language rewrites the words


def test_language_negotiation():
    assert i18n.negotiate("de", "en-US", "fr", "es") == "de"  # the URL first
    assert i18n.negotiate(None, "fr-CA", "de", "es") == "fr"  # then the browser's locale
    assert i18n.negotiate(None, None, "it;q=1, de-AT;q=0.8, en;q=0.5", "es") == "de"
    assert i18n.negotiate("xx", None, "it", "es") == "es"  # then the store's default
    assert i18n.negotiate(None, None, None, None) == "en"
    assert i18n.negotiate("qps", None, None, "de") == "de"  # the tests' pseudo-language: not here
    assert i18n.region_of("en", "en-GB") == "en_GB" and i18n.region_of("de", "en-US") == "de_DE"


def test_upgrading_turns_hundredths_of_yen_into_yen(db_url):
    """Before 0015 every amount was hundredths of the unit, whatever the currency."""
    from alembic import command

    from claims_core.infra import migrate
    engine = make_engine(db_url)
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0014")
    now = datetime(2026, 11, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    with engine.begin() as c:
        for oid, cur, total in ((1, "JPY", 120000), (2, "USD", 1250), (3, "KWD", 150)):
            c.execute(text("INSERT INTO orders (id, order_number, name, email, customer_name, created_at,"
                           " financial_status, fulfillment_status, currency, subtotal_cents, shipping_cents,"
                           " tax_cents, total_cents, protection_fee_cents, shipping_method,"
                           " shipping_address1, shipping_city, shipping_zip, shipping_province,"
                           " shipping_country, source, risk_level, refunded_cents, updated_at) VALUES"
                           " (:id, :n, :n, 'a@example.com', '', :t, 'paid', 'fulfilled', :cur, :tot, 0, 0,"
                           " :tot, 0, '', '', '', '', '', '', 'import', '', 0, :t)"),
                      {"id": oid, "n": str(oid), "t": now, "cur": cur, "tot": total})
            c.execute(text("INSERT INTO line_items (order_id, position, sku, name, quantity,"
                           " unit_price_cents, discount_cents, requires_shipping, is_protection)"
                           " VALUES (:id, 1, 'X', 'X', 1, :tot, 0, true, false)"),
                      {"id": oid, "tot": total})
        c.execute(text("UPDATE store_settings SET currency = 'JPY', signature_threshold_cents = 5000000,"
                       " reship_shipping_cents = 80000"))
    migrate.upgrade(engine)
    with engine.connect() as c:
        store = c.execute(text("SELECT signature_threshold_cents, reship_shipping_cents"
                               " FROM store_settings")).one()
        assert tuple(store) == (50000, 800)  # ¥50,000 and ¥800, as they were meant
        totals = dict(c.execute(text("SELECT currency, total_cents FROM orders")).all())
        prices = dict(c.execute(text("SELECT o.currency, l.unit_price_cents FROM line_items l"
                                     " JOIN orders o ON o.id = l.order_id")).all())
    assert totals == {"JPY": 1200, "USD": 1250, "KWD": 1500} == prices
    engine.dispose()
