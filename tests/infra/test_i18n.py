"""The catalogs, the store's texts per language, and which language a page speaks (issue 17)."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from claims_core.domain.errors import ErrorCode, InvalidInput
from claims_core.infra import catalogs, i18n
from claims_core.infra.db import make_engine
from claims_core.services import settings as store_settings

from tests.pages.test_portal_app import APP


def test_every_language_has_every_message_of_the_code():
    """Fails when a message is added or changed in the code without its translations, when a
    translation is fuzzy or empty, or when its {placeholders} differ from the English."""
    assert catalogs.problems() == []


def test_the_pseudo_language_rewrites_every_message_but_keeps_placeholders():
    t = i18n.translator(i18n.PSEUDO)
    assert t("Find my order").startswith("⟦") and "Find" not in t("Find my order")
    assert t("Order {name}", name="#1001").endswith("#1001⟧")
    assert t.plural("One update", "All {n} updates", 3).count("3") == 1


def test_a_broken_translation_falls_back_to_english_instead_of_crashing(monkeypatch):
    t = i18n.Translator("de")
    monkeypatch.setattr(t, "template", lambda message: "Bestellung {nme}")  # a typo in a catalog
    assert t("Order {name}", name="#1001") == "Order #1001"


def test_store_texts_per_language_fall_back_to_the_default_language(db_url):
    engine = make_engine(db_url)
    store_settings.update_settings(engine, "test", {"intro_text": "Old intro", "default_language": "es"})
    s = store_settings.load_settings(engine)
    assert store_settings.store_text(s, "intro", "de") == "Old intro"  # from before languages
    store_settings.save_store_texts(engine, "test", "es", {"intro": "Hola", "policy": "Política"})
    store_settings.save_store_texts(engine, "test", "de", {"intro": "Hallo"})
    s = store_settings.load_settings(engine)
    assert store_settings.store_text(s, "intro", "de") == "Hallo"
    assert store_settings.store_text(s, "policy", "de") == "Política"  # the default language's
    assert store_settings.store_text(s, "intro", "fr") == "Hola"
    assert store_settings.store_text(s, "support_note", "fr") == ""
    assert json.loads(s.texts)["de"] == {"intro": "Hallo"}
    with pytest.raises(InvalidInput):
        store_settings.save_store_texts(engine, "test", "xx", {"intro": "?"})
    with pytest.raises(InvalidInput) as e:
        store_settings.save_store_texts(engine, "test", "fr", {"intro": "x" * 5000})
    assert e.value.code == ErrorCode.TEXT_TOO_LONG
    engine.dispose()


@pytest.mark.parametrize("change", [{"default_language": "it"}, {"currency": "XYZ"},
                                    {"currency": "dollars"}])
def test_settings_refuse_a_language_or_currency_the_app_cant_use(db_url, change):
    engine = make_engine(db_url)
    with pytest.raises(InvalidInput):
        store_settings.update_settings(engine, "test", change)
    engine.dispose()


def test_settings_take_a_currency_in_any_case(db_url):
    engine = make_engine(db_url)
    store_settings.update_settings(engine, "test", {"currency": "jpy", "default_language": "de"})
    s = store_settings.load_settings(engine)
    assert (s.currency, s.default_language) == ("JPY", "de")
    engine.dispose()


def _portal(url: str, monkeypatch, **query) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    return at


def test_the_portal_speaks_the_language_in_the_url_and_the_picker_changes_it(db_url, monkeypatch):
    from views import ui
    ui.release_engines()
    at = _portal(db_url, monkeypatch, lang="es")
    es = i18n.translator("es")
    assert es("File a claim") in [t.value for t in at.title]
    picker = at.selectbox(key="language_picker")
    assert picker.value == "es"
    picker.set_value("de").run()
    assert at.query_params["lang"] == ["de"] or at.query_params["lang"] == "de"
    assert i18n.translator("de")("File a claim") in [t.value for t in at.title]
    ui.release_engines()


def test_the_stores_default_language_when_the_browser_says_nothing(db_url, monkeypatch):
    from views import ui
    engine = make_engine(db_url)
    store_settings.update_settings(engine, "test", {"default_language": "fr"})
    engine.dispose()
    ui.release_engines()
    at = _portal(db_url, monkeypatch)
    assert i18n.translator("fr")("File a claim") in [t.value for t in at.title]
    ui.release_engines()
