"""Holes found by probing, closed (see the trust issue): who the client is for the throttle."""
from claims_core.domain.identifiers import client_address
from claims_core.infra import config


def test_forwarded_for_is_ignored_unless_the_operator_trusts_proxies():
    # a visitor who writes the header himself, straight to the app: one address however he spoofs
    assert client_address("203.0.113.9", "1.2.3.4", 0) == "203.0.113.9"
    assert client_address("203.0.113.9", "5.6.7.8, 9.9.9.9", 0) == "203.0.113.9"


def test_one_trusted_proxy_gives_the_address_it_saw():
    # the proxy (10.0.0.2) appended the client's address to whatever the client sent
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7", 1) == "198.51.100.7"
    assert client_address("10.0.0.2", "198.51.100.7", 1) == "198.51.100.7"
    # two proxies: the address the outer one saw
    assert client_address("10.0.0.3", "6.6.6.6, 198.51.100.7, 10.0.0.2", 2) == "198.51.100.7"


def test_more_trusted_proxies_than_hops_falls_back_to_the_first_hop():
    assert client_address("10.0.0.2", "198.51.100.7", 5) == "198.51.100.7"
    assert client_address("10.0.0.2", None, 1) == "10.0.0.2"


def test_the_setting_reads_a_whole_number(monkeypatch):
    monkeypatch.delenv("CLAIMS_TRUSTED_PROXIES", raising=False)
    assert config.trusted_proxies() == 0
    monkeypatch.setenv("CLAIMS_TRUSTED_PROXIES", "2")
    assert config.trusted_proxies() == 2
    monkeypatch.setenv("CLAIMS_TRUSTED_PROXIES", "two")
    assert config.trusted_proxies() == 0  # a typo trusts no header: stricter, never looser
