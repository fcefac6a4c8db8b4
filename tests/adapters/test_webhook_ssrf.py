"""Outbound webhooks can't be steered into the shop's own network: IPv6 addresses that embed a
private IPv4 one are refused, and the connection goes to the address that was checked even when
the name answers differently a moment later (DNS rebinding)."""
from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select

from claims_core import domain
from claims_core.adapters import outbound_webhooks
from claims_core.domain.webhook_targets import check_addresses, embedded_ipv4, is_public
from claims_core.infra.db import read_session, utcnow
from claims_core.infra.models import WebhookDelivery
from claims_core.services import customer

from tests.support.factories import claim_request, make_order

PRIVATE_V4 = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "192.0.0.0/29", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")]


@st.composite
def private_v4(draw):
    net = draw(st.sampled_from(PRIVATE_V4))
    return net[draw(st.integers(0, net.num_addresses - 1))]


def _embed(v4: ipaddress.IPv4Address, how: str, salt: int) -> ipaddress.IPv6Address:
    n = int(v4)
    if how == "mapped":  # ::ffff:a.b.c.d
        return ipaddress.IPv6Address((0xFFFF << 32) | n)
    if how == "compatible":  # ::a.b.c.d
        return ipaddress.IPv6Address(n)
    if how == "nat64":  # 64:ff9b::a.b.c.d
        return ipaddress.IPv6Address((0x0064FF9B << 96) | n)
    if how == "6to4":  # 2002:aabb:ccdd:<subnet>:<interface>
        return ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | (salt & ((1 << 80) - 1)))
    if how == "teredo-client":  # 2001:0:<server>:<flags>:<port ^ ffff>:<client ^ ffffffff>
        server = int(ipaddress.IPv4Address("65.54.227.120"))
        return ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | ((salt & 0xFFFF) << 48)
                                     | ((salt >> 16 & 0xFFFF) << 32) | (n ^ 0xFFFFFFFF))
    if how == "teredo-server":
        return ipaddress.IPv6Address((0x20010000 << 96) | (n << 64) | (salt & ((1 << 64) - 1)))
    raise AssertionError(how)


WAYS = ["mapped", "compatible", "nat64", "6to4", "teredo-client", "teredo-server"]


@settings(max_examples=300, deadline=None)
@given(private_v4(), st.sampled_from(WAYS), st.integers(0, 2 ** 80 - 1))
def test_an_ipv6_address_embedding_a_private_ipv4_is_refused(v4, how, salt):
    ip = _embed(v4, how, salt)
    assert v4 in embedded_ipv4(ip)
    assert not is_public(ip)
    with pytest.raises(domain.ClaimRuleError) as e:
        check_addresses("hooks.example.com", ["93.184.216.34", str(ip)])
    assert e.value.code == domain.ErrorCode.WEBHOOK_URL_NOT_PUBLIC


@pytest.mark.parametrize("address", ["64:ff9b::10.0.0.1", "64:ff9b::7f00:1", "::127.0.0.1",
                                     "::10.1.2.3", "::ffff:192.168.1.1", "2002:a00:1::1",
                                     "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                                     "64:ff9b:1::8.8.8.8"])
def test_known_smuggling_forms_are_refused(address):
    with pytest.raises(domain.ClaimRuleError):
        check_addresses("hooks.example.com", [address])


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946",
                                     "64:ff9b::93.184.216.34", "::ffff:93.184.216.34",
                                     "2002:5db8:d822::1"])
def test_public_addresses_still_pass_including_public_ipv4_embedded(address):
    check_addresses("hooks.example.com", [address])


# --- DNS rebinding --------------------------------------------------------------------------------

@pytest.fixture
def loopback_listener():
    """A TCP listener on 127.0.0.1 that counts the connections it gets (the shop's own service
    that a rebinding attack would reach)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    hits, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, peer = srv.accept()
            except (socket.timeout, OSError):
                continue
            hits.append(peer)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
            finally:
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], hits
    stop.set()
    t.join(2)
    srv.close()


def test_the_connection_goes_to_the_checked_address_not_a_second_answer(
        engine, monkeypatch, loopback_listener):
    port, hits = loopback_listener
    checked = "93.184.216.34"
    url = f"https://hooks.rebind.example:{port}/hook"
    outbound_webhooks.add_endpoint(engine, url, ["claim.created"], "owner:o",
                                   resolver=lambda _h: [checked])
    built = make_order(engine, "8801", "r@example.com", base=utcnow(), tracking_prefix="R")
    customer.file_claim(engine, claim_request(built, key="r8801"))

    # The name answers a public address when the sender checks it, and 127.0.0.1 to any later
    # look-up (what an attacker's DNS server with a short TTL does).
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host, *args, **kwargs):
        if host == "hooks.rebind.example":
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    dialed = []
    real_create_connection = socket.create_connection

    def create_connection(address, *args, **kwargs):
        dialed.append(address[0])
        if address[0] == checked:  # no real Internet in tests: the public host doesn't answer
            raise ConnectionRefusedError(111, "refused (test)")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    out = outbound_webhooks.send_pending(engine, resolver=lambda _h: [checked])

    assert hits == [], "a connection reached 127.0.0.1"
    assert dialed and set(dialed) == {checked}
    assert out == {"delivered": 0, "retry": 1, "failed": 0}
    with read_session(engine) as s:
        d = s.scalars(select(WebhookDelivery)).one()
        assert "secret" not in (d.last_error or "") and d.last_status_code is None


def test_pinned_request_keeps_the_name_for_host_and_tls():
    url, headers, ext = outbound_webhooks.pinned_request(
        "https://Hooks.Example.com:8443/in?x=1", "2606:2800:220:1:248:1893:25c8:1946")
    assert url == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/in?x=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert ext == {"sni_hostname": "hooks.example.com"}
