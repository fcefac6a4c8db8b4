"""The staff Settings page as a router over one module per section (issue #27, "Names and places
that tell the truth"): its sections grouped under a few tabs, every bound read from the service,
one service call per action; resolution kinds named by ``ResolutionKind`` in every page; the
customer's read models apart from the customer's actions."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from claims_core import domain
from claims_core.domain.auto_approval import RuleSpec
from claims_core.services import auto_approval
from claims_core.services import settings as store_settings

from tests.pages.test_staff_app import app, everything  # noqa: F401  (the staff AppTest fixture)

ROOT = Path(__file__).resolve().parents[2]
PAGE = "views/staff/settings.py"
SECTION_PAGES = sorted((ROOT / "views").glob("settings_*.py"))
# six tabs, short enough for a phone's width, each over its sections (Staff has one: no second row)
TABS = {"Claims": ["Claim rules", "Automation", "Recoveries"],
        "Store": ["Branding", "Languages & currency"],
        "Staff": [],
        "Email": ["Email link", "Unmatched mail"],
        "Integrations": ["Imports", "Shopify & tracking", "API & webhooks", "Background work"],
        "Data": ["Customer data", "Privacy"]}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_the_page_groups_every_section_under_six_tabs(app):  # noqa: F811
    at = app("owner", PAGE)
    assert [t.label for t in at.tabs] == [x for tab, sections in TABS.items()
                                          for x in (tab, *sections)]  # each tab, then its sections
    shown = everything(at)
    for needle in ("Resolutions offered to customers", "Auto-approve rules", "**Logo**",
                   "Customers read the portal", "Add a staff member", "Rotate the secret",
                   "Point Shopify, 17TRACK and EasyPost", "For a help desk", "Failed emails"):
        assert needle in shown, needle  # a line of each section
    # the widgets keep their keys
    assert at.number_input(key="s_window") and at.number_input(key="r_max")
    assert at.text_input(key="s_name") and at.selectbox(key="s_default_lang")
    assert at.text_input(key="s_new_user") and at.radio(key="s_import_kind")
    assert at.text_input(key="shopify_domain") and at.text_input(key="api_key_name")
    assert at.text_input(key="rec_policy_min")


def test_the_page_is_a_router_that_calls_no_service():
    tree = _tree(ROOT / PAGE)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("claims_core") for m in imported), imported
    assert len((ROOT / PAGE).read_text(encoding="utf-8").splitlines()) < 80


@pytest.mark.parametrize("path", [ROOT / PAGE, *SECTION_PAGES], ids=lambda p: p.name)
def test_no_settings_page_restates_a_bound(path):
    """A number field's bounds come from the service (``services.settings.RANGES``,
    ``auto_approval.QUIET_MONTHS``…), never as numbers written in the page."""
    for call in ast.walk(_tree(path)):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "number_input":
            bounds = call.args[1:3] + [k.value for k in call.keywords
                                       if k.arg in ("min_value", "max_value")]
            assert not any(isinstance(b, ast.Constant) for b in bounds), \
                f"{path.name}:{call.lineno} writes a bound"


def test_the_claim_rules_fields_follow_the_services_ranges(app, monkeypatch):  # noqa: F811
    at = app("owner", PAGE)
    window = at.number_input(key="s_window")
    assert (window.min, window.max) == store_settings.RANGES["filing_window_days"][:2]
    photo_mb = at.number_input(key="s_photo_mb")
    assert photo_mb.max == store_settings.RANGES["max_photo_bytes"][1] // domain.MEGABYTE
    monkeypatch.setitem(store_settings.RANGES, "filing_window_days", (7, 90, "The filing window"))
    at = app("owner", PAGE)
    assert (at.number_input(key="s_window").min, at.number_input(key="s_window").max) == (7, 90)


def test_the_rule_form_is_held_to_the_services_bounds(app, engine):  # noqa: F811
    at = app("owner", PAGE)
    assert (at.number_input(key="r_quiet").min,
            at.number_input(key="r_quiet").max) == auto_approval.QUIET_MONTHS
    too_big = RuleSpec("Everything", auto_approval.MAX_AMOUNT_MINOR + 1)
    with pytest.raises(domain.InvalidInput) as refused:
        auto_approval.save_rule(engine, "test", too_big)
    assert refused.value.code == domain.ErrorCode.RULE_INVALID


def test_removing_the_logo_says_so(app, engine):  # noqa: F811
    store_settings.set_logo(engine, "test", _png())
    at = app("owner", PAGE)
    at.button(key="s_logo_rm").click().run()
    assert "Logo removed." in everything(at)
    assert store_settings.load_settings(engine).logo_png is None


def _png() -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buf, "PNG")
    return buf.getvalue()


# --- resolution kinds by their enum in every page ------------------------------------------------

KINDS = {k.value for k in domain.ResolutionKind}


def _kind_literals(path: Path) -> list[int]:
    """Lines where a page compares with, or passes, a resolution kind written as a string."""
    lines = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call):
            operands = list(node.args)
        else:
            continue
        lines += [o.lineno for o in operands if isinstance(o, ast.Constant) and o.value in KINDS]
    return lines


def test_pages_name_resolution_kinds_by_the_enum():
    found = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / "views").rglob("*.py"))
             if (lines := _kind_literals(p))}
    assert found == {}


def test_the_kind_check_sees_a_literal(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('if r.kind == "refund":\n    pass\nchosen.append(ResolutionInput("reshipment"))\n')
    assert _kind_literals(page) == [1, 3]


# --- the customer's read models apart from the customer's actions -----------------------------

def test_read_models_and_actions_live_in_modules_named_for_them():
    from claims_core.services import claim_views, customer, order_views

    assert order_views.OrderView.__module__ == order_views.__name__
    assert order_views.ShipmentView.__module__ == order_views.__name__
    assert claim_views.ClaimView.__module__ == claim_views.__name__
    own = {n for n, f in inspect.getmembers(customer, inspect.isfunction)
           if f.__module__ == customer.__name__}
    assert not own & {"build_order_view", "get_order_for_customer", "resolution_choices",
                      "build_claim_view", "get_claim_for_customer", "get_evidence_image"}
    for action in ("file_claim", "add_customer_message", "reply_on_claim", "check_claim_details"):
        assert getattr(customer, action).__module__ == customer.__name__
