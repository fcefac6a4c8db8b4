"""Settings → API & webhooks under AppTest: a key is shown once and works, revoking stops it;
an endpoint is added (private targets only once allowed) and switched off."""
from __future__ import annotations

from claims_core.services import api_keys, webhook_endpoints

from tests.pages.test_staff_app import app, everything  # noqa: F401  (the staff AppTest fixture)


def test_an_api_key_is_shown_once_and_can_be_revoked(app, engine):  # noqa: F811
    at = app("owner", "views/staff/settings.py")
    at.text_input(key="api_key_name").input("Help desk")
    at.selectbox(key="api_key_scope").select("write")
    at.button(key="FormSubmitter:api_key_form-Make a key").click()
    at.run()
    assert not at.exception, at.exception
    raw = next(c.value for c in at.code if c.value.startswith("ck_"))
    key = api_keys.authenticate(engine, raw)
    assert key is not None and key.scope == "write" and key.name == "Help desk"
    at.run()  # the next run no longer shows it
    assert raw not in everything(at) and all(c.value != raw for c in at.code)
    at.button(key="api_revoke").click()
    at.run()
    assert api_keys.authenticate(engine, raw) is None


def test_webhook_endpoints_private_targets_and_replay(app, engine):  # noqa: F811
    at = app("owner", "views/staff/settings.py")
    at.text_input(key="wh_url").input("http://127.0.0.1:9/hook")
    at.button(key="FormSubmitter:webhook_form-Add endpoint").click()
    at.run()
    assert any("private" in e.value or "https" in e.value for e in at.error)
    assert webhook_endpoints.list_endpoints(engine) == []
    at.toggle(key="wh_allow_private").set_value(True)
    at.run()
    at.text_input(key="wh_url").input("http://127.0.0.1:9/hook")
    at.button(key="FormSubmitter:webhook_form-Add endpoint").click()
    at.run()
    assert not at.exception, at.exception
    [ep] = webhook_endpoints.list_endpoints(engine)
    assert ep.url == "http://127.0.0.1:9/hook" and ep.active and len(ep.events) == 7  # all types
    assert any(c.value == ep.secret for c in at.code)
    at.button(key=f"endpoint_toggle_{ep.id}").click()
    at.run()
    assert not webhook_endpoints.list_endpoints(engine)[0].active
