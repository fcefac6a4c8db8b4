"""Identifier normalisation: order numbers, tracking numbers, emails, and the key a look-up is
counted under. Search and the look-up throttle both use these, so every spelling of one identifier
finds the same order and counts against the same limit."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import unicodedata

from .text import strip_controls


def _nfkc(raw: str | None) -> str:
    return unicodedata.normalize("NFKC", strip_controls(raw))


def normalize_order_number(raw: str | None) -> str:
    """``#1001``, ``1001``, `` 1001 `` and ``＃1001`` all become ``1001``."""
    s = _nfkc(raw).strip().lstrip("#").strip()
    return re.sub(r"\s+", "", s).upper()


def normalize_tracking(raw: str | None) -> str:
    """``1Z-999 AA1``, ``1z999aa1`` and ``1Z999AA1`` all become ``1Z999AA1``."""
    return re.sub(r"[\s\-]+", "", _nfkc(raw)).upper()


def normalize_email(raw: str | None) -> str:
    """Emails compare case-insensitively, ignoring stray spaces."""
    return _nfkc(raw).strip().lower()


def emails_match(given: str, on_file: str) -> bool:
    """Constant-time comparison of two emails after normalising both."""
    return hmac.compare_digest(normalize_email(given).encode("utf-8"),
                               normalize_email(on_file).encode("utf-8"))


def lookup_target(query: str | None) -> str:
    """The one key a typed order or tracking number is throttled under: the query as both
    cleaners read it (no ``#``, spaces or dashes, upper case), so ``1Z-999…``, ``1z 999…`` and
    ``1Z999…`` are one target, as they are one shipment to the search."""
    return normalize_tracking(normalize_order_number(query))[:100]


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: int) -> str | None:
    """Who is asking, for throttling. ``X-Forwarded-For`` is anyone's to write, so it is read only
    as far as the operator's own proxies reach: with ``trusted_proxies`` = N, the address N hops
    back from the connection (each trusted proxy appends the address it saw). With 0 (the
    default) the header is ignored and the connection's address counts."""
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    chain = [h.strip() for h in forwarded_for.split(",") if h.strip()] + ([peer] if peer else [])
    if not chain:
        return peer
    return chain[max(0, len(chain) - 1 - trusted_proxies)]


def client_network(address: str | None) -> str:
    """The part of an address that names one client: an IPv4 address as it is (an IPv4-mapped
    IPv6 one too), an IPv6 address as its /64 (one home or phone gets a whole /64, so every
    address in it is one client to a throttle), anything else as it is."""
    raw = (address or "").strip()
    try:
        ip = ipaddress.ip_address(raw.split("%")[0].strip("[]"))
    except ValueError:
        return raw or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_key(address: str | None) -> str:
    """A client as the throttles count it: a hash of its address, or of its /64 for IPv6
    (``client_network``; the address itself isn't kept)."""
    return "client:" + hashlib.sha256(client_network(address).encode()).hexdigest()[:32]
