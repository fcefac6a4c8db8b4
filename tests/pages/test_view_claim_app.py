"""View My Claim under AppTest: by link, by order + email, replies, photos while the shop waits."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from claims_core.infra.db import utcnow
from claims_core.services import claim_views, customer, decisions
from claims_core.services import settings as store_settings
from views import ui

from tests.support.factories import claim_request, jpeg_bytes, make_order

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


@pytest.fixture
def view(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    uploads: list = []
    monkeypatch.setattr(ui, "photo_uploader",
                        lambda label, key, collapsed=False, **_kw: uploads.pop(0) if uploads else [])

    def open_(token=None):
        at = AppTest.from_file(APP, default_timeout=60)
        if token is not None:
            at.query_params["token"] = token
        at.run()  # st.navigation registers its pages on the first run
        at.switch_page("views/customer/view_claim.py")
        at.run()
        assert not at.exception, at.exception
        at.uploads = uploads
        return at
    return open_


@pytest.fixture
def filed(engine):
    built = make_order(engine, base=utcnow())
    receipt = customer.file_claim(engine, claim_request(built, description="Mug handle snapped"))
    return built, receipt


def texts(at):
    return "\n".join([m.value for m in at.markdown] + [t.value for t in at.text]
                     + [c.value for c in at.caption] + [c.value for c in at.code]
                     + [w.value for w in at.warning] + [e.value for e in at.error]
                     + [s.value for s in at.success] + [i.value for i in at.info])


def test_by_link(view, filed):
    built, r = filed
    at = view(r.access_token)
    assert [t.value for t in at.title] == [f"Claim {r.reference}"]
    body = texts(at)
    assert "Received" in body and "Order #1001" in body and "Mug handle snapped" in body
    assert "Hand-thrown Mug" in body.replace("\\-", "-")
    assert "Photos" in [h.value for h in at.subheader]


def test_bad_link(view):
    at = view("not-a-real-token-at-all-000000")
    assert "isn't valid" in at.error[0].value
    assert at.button  # the lookup form is offered instead


def test_by_order_and_email(view, filed):
    built, r = filed
    at = view()
    at.text_input[0].input("#1001")
    at.text_input[1].input("SAM@example.com")
    at.button[0].click().run()
    assert r.reference in texts(at)
    at.button(key=f"open_{r.reference}").click().run()
    assert [t.value for t in at.title] == [f"Claim {r.reference}"]


def test_wrong_email_same_message(view, filed):
    at = view()
    at.text_input[0].input("1001")
    at.text_input[1].input("intruder@example.com")
    at.button[0].click().run()
    assert "couldn't find an order" in at.error[0].value


def test_reply_any_time(view, filed, engine):
    built, r = filed
    at = view(r.access_token)
    at.text_area(key="reply_body").input("Any update? <b>thanks</b>")
    at.button[-1].click().run()
    assert not at.exception
    claim = claim_views.get_claim_for_customer(engine, r.access_token)
    assert claim.messages[-1].body == "Any update? <b>thanks</b>" and claim.status == "submitted"
    assert "Any update? <b>thanks</b>" in [t.value for t in at.text]


def test_needs_info_reply_with_photo_goes_back_to_review(view, filed, engine):
    built, r = filed
    decisions.request_info(engine, r.claim_id, "staff:jordan", "Jordan", "Please send the label")
    at = view(r.access_token)
    assert "waiting for more information" in texts(at)
    assert "Please send the label" in [t.value for t in at.text]
    at.uploads.append([("label.jpg", jpeg_bytes(seed=99))])
    at.text_area(key="reply_body").input("Label attached")
    at.button[-1].click().run()
    claim = claim_views.get_claim_for_customer(engine, r.access_token)
    assert claim.status == "in_review" and len(claim.evidence) == 2
    assert "In review" in texts(at)


def test_bad_photo_in_reply_is_named(view, filed, engine):
    built, r = filed
    decisions.request_info(engine, r.claim_id, "staff:jordan", "Jordan", "Please send the label")
    at = view(r.access_token)
    at.uploads.append([("label.jpg", b"<html>not an image</html>")])
    at.text_area(key="reply_body").input("Here")
    at.button[-1].click().run()
    assert at.error[0].value.startswith("label.jpg: ")
    assert claim_views.get_claim_for_customer(engine, r.access_token).status == "needs_info"


def test_decisions_shown(view, engine):
    built = make_order(engine, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, resolution="store_credit"))
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})  # the store allows it
    codes = decisions.approve(engine, r.claim_id, "staff:t",
                              [decisions.ResolutionInput("store_credit", 2800, 10)])
    at = view(r.access_token)
    body = texts(at)
    assert "Decision: approved" in body and "$30.80" in body and codes[0] in body
    r2 = customer.file_claim(engine, claim_request(built, key="k2",
                                                   items={built.items[(0, "TOTE")]: 1}))
    decisions.deny(engine, r2.claim_id, "staff:t", "delivered_confirmed", "Signed for by you.")
    at = view(r2.access_token)
    body = texts(at)
    assert "not approved" in body and "Signed for by you." in body
