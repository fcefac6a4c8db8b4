"""Where outbound webhooks may go: never into the shop's own network.

An endpoint's URL must be http(s) with a host; every address its host resolves to must be a
public one (not private, loopback, link-local, multicast, reserved or unspecified, nor an IPv6
address that embeds such an IPv4 one: IPv4-mapped, 6to4, Teredo, NAT64, IPv4-compatible), unless the
store explicitly allows private targets (a local integration; the tests). Pure: the resolving is
done by the caller and the addresses handed in.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

from .errors import ErrorCode, InvalidInput

EVENT_TYPES = ("claim.created", "claim.updated", "claim.approved", "claim.denied", "claim.resolved",
               "message.created",
               "recovery.updated")  # a recovery from the carrier moved (domain/recoveries.py)


def check_url(url: str, *, allow_private: bool = False) -> str:
    """The URL's host, or a refusal saying what is wrong with the URL."""
    u = (url or "").strip()
    parts = urlsplit(u)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("Enter the endpoint's full address, starting with https://.",
                           ErrorCode.WEBHOOK_URL_INVALID)
    if parts.scheme == "http" and not allow_private:
        raise InvalidInput("Use an https:// address: the events carry customers' details.",
                           ErrorCode.WEBHOOK_URL_INVALID)
    if parts.username or parts.password:
        raise InvalidInput("Leave user names and passwords out of the address; the signature "
                           "proves the sender.", ErrorCode.WEBHOOK_URL_INVALID)
    if len(u) > 2000:
        raise InvalidInput("That address is too long.", ErrorCode.TEXT_TOO_LONG)
    return parts.hostname


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool = False) -> None:
    """Refuse a host that resolves to nothing, or to any address that isn't public."""
    found = list(addresses)
    if not found:
        raise InvalidInput(f"{host} can't be found (no address).", ErrorCode.WEBHOOK_URL_INVALID)
    if allow_private:
        return
    for raw in found:
        ip = ipaddress.ip_address(raw.split("%")[0])
        if not is_public(ip):
            raise InvalidInput(
                f"{host} points into a private network ({ip}); webhooks only go to public "
                "addresses. (A store can allow private addresses in Settings for a local "
                "integration.)", ErrorCode.WEBHOOK_URL_NOT_PUBLIC)


# Prefixes whose addresses carry an IPv4 address in their last 32 bits: NAT64's well-known prefix
# (RFC 6052) and the deprecated IPv4-compatible form (::a.b.c.d). The local-use NAT64 prefix
# (RFC 8215) is a site's own network, never public.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, 6to4, Teredo (server and
    client), NAT64 and IPv4-compatible. A translator or tunnel would deliver to these, so they are
    what has to be public."""
    if ip.version == 4:
        return []
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address, and so is every IPv4 address embedded in it."""
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 6 and ip in _LOCAL_NAT64:
        return False
    return all(v4.is_global and not v4.is_multicast for v4 in embedded_ipv4(ip))


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e for e in events if e))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown or not chosen:
        raise InvalidInput("Choose at least one event: " + ", ".join(EVENT_TYPES) + ".",
                           ErrorCode.WEBHOOK_EVENTS_REQUIRED)
    return chosen
