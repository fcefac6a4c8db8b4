"""Issue #26 point 4 (WCAG 2.2 §2.5.7): above the store's signature threshold a customer who can't
draw signs with their typed name and an explicit statement, recorded as such; and the order link
(issue #28) under AppTest: a signed link opens the order, anything else only fills the form."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from claims_core import domain
from claims_core.domain import order_link
from claims_core.infra.db import write_session
from claims_core.infra.models import LookupAttempt, StoreSettings

from tests.pages.test_portal_app import claims, order, portal, to_sign  # noqa: F401 - the portal fixture


def test_typed_name_with_the_cant_draw_statement_signs_above_the_threshold(portal, engine):  # noqa: F811
    built = order(engine, total_cents=80_000)  # above the default threshold ($500)
    p = portal()
    to_sign(p, built)
    p.choose("sign_mode", "typed")
    p.at.text_input(key="typed_name").input("Sam Jones")
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert claims(engine) == []  # no statement: refused, by code
    assert "tick the box saying you can't draw" in p.errors()[0]
    box = p.at.checkbox(key="cannot_draw")
    assert box.label == str(domain.CANNOT_DRAW_STATEMENT)
    box.check()
    p.click("submit")
    assert p.titles() == ["Claim received"], p.errors()
    (claim,) = claims(engine)
    assert claim.signature_kind == "typed" and claim.signature_name == "Sam Jones"
    assert claim.signature_cannot_draw is True and claim.signature_png is None


def test_below_the_threshold_typing_needs_no_statement_and_records_none(portal, engine):  # noqa: F811
    built = order(engine)
    p = portal()
    to_sign(p, built)
    p.choose("sign_mode", "typed")
    assert not [c for c in p.at.checkbox if c.key == "cannot_draw"]
    p.at.text_input(key="typed_name").input("Sam Jones")
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert p.titles() == ["Claim received"], p.errors()
    assert claims(engine)[0].signature_cannot_draw is False


def test_the_rule_lives_in_the_domain():
    with pytest.raises(domain.SignatureInvalid):
        domain.check_signature(kind="typed", typed_name="Sam Jones", accurate_confirmed=True,
                               order_total_cents=80_000, threshold_cents=50_000)
    domain.check_signature(kind="typed", typed_name="Sam Jones", accurate_confirmed=True,
                           order_total_cents=80_000, threshold_cents=50_000,
                           cannot_draw_confirmed=True)
    assert domain.records_cannot_draw("typed", True)
    assert not domain.records_cannot_draw("drawn", True)  # a drawing is a drawing


def test_each_claim_button_names_its_shipment(portal, engine):  # noqa: F811
    from tests.pages.test_portal_app import two_shipments
    built = two_shipments(engine)
    p = portal()
    p.lookup(f"#{built.number}", built.email)
    labels = [b.label for b in p.at.button if (b.key or "").startswith("start_claim_")]
    assert labels == ["Claim for this shipment · Shipment 1", "Claim for this shipment · Shipment 2"]


def _secret(engine):
    with write_session(engine) as s:
        row = s.get(StoreSettings, 1)
        row.order_link_secret = row.order_link_secret or order_link.new_secret()
        return row.order_link_secret


def test_a_signed_link_opens_the_order_page(portal, engine):  # noqa: F811
    built = order(engine)
    secret = _secret(engine)
    p = portal()
    p.at.query_params.update({"order": f"#{built.number}", "email": built.email.upper(),
                              "sig": order_link.sign(secret, built.number, built.email)})
    p.run()
    assert p.titles() == [f"Order #{built.number}"]
    p.click(f"start_claim_{built.shipment_ids[0]}")  # and the claim goes on from there
    assert p.titles() == ["What went wrong?"]


@pytest.mark.parametrize("how", ["unsigned", "tampered", "rotated"])
def test_other_links_only_fill_in_the_form(portal, engine, how):  # noqa: F811
    built = order(engine)
    other = order(engine, number="1002", email="other@example.com")
    secret = _secret(engine)
    sig = {"unsigned": "", "tampered": order_link.sign(secret, other.number, built.email),
           "rotated": order_link.sign(secret, built.number, built.email)}[how]
    if how == "rotated":
        with write_session(engine) as s:
            s.get(StoreSettings, 1).order_link_secret = order_link.new_secret()
    p = portal()
    p.at.query_params.update({"order": built.number, "email": built.email, "sig": sig})
    p.run()
    assert p.titles() == ["File a claim"]
    assert p.at.text_input(key="lookup_query").value == built.number
    assert p.at.text_input(key="lookup_email").value == built.email
    with write_session(engine) as s:
        assert len(s.scalars(select(LookupAttempt)).all()) == 2  # one try, order + client
    p.at.button[0].click()  # the customer confirms with "Find my order": the look-up as ever
    p.run()
    assert p.titles() == [f"Order #{built.number}"]
