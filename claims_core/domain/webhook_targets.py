"""Where outbound webhooks may go: never into the shop's own network.

An endpoint's URL must be http(s) with a host; every address its host resolves to must be a
public one (not private, loopback, link-local, multicast, reserved or unspecified), unless the
store explicitly allows private targets (a local integration; the tests). Pure: the resolving is
done by the caller and the addresses handed in.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

from .errors import ErrorCode, InvalidInput

EVENT_TYPES = ("claim.created", "claim.updated", "claim.approved", "claim.denied", "claim.resolved",
               "message.created")


def check_url(url: str, *, allow_private: bool = False) -> str:
    """The URL's host, or a refusal saying what is wrong with the URL."""
    u = (url or "").strip()
    parts = urlsplit(u)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("Enter the endpoint's full address, starting with https://.",
                           ErrorCode.INVALID_INPUT)
    if parts.scheme == "http" and not allow_private:
        raise InvalidInput("Use an https:// address: the events carry customers' details.",
                           ErrorCode.INVALID_INPUT)
    if parts.username or parts.password:
        raise InvalidInput("Leave user names and passwords out of the address; the signature "
                           "proves the sender.", ErrorCode.INVALID_INPUT)
    if len(u) > 2000:
        raise InvalidInput("That address is too long.", ErrorCode.TEXT_TOO_LONG)
    return parts.hostname


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool = False) -> None:
    """Refuse a host that resolves to nothing, or to any address that isn't public."""
    found = list(addresses)
    if not found:
        raise InvalidInput(f"{host} can't be found (no address).", ErrorCode.INVALID_INPUT)
    if allow_private:
        return
    for raw in found:
        ip = ipaddress.ip_address(raw.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise InvalidInput(
                f"{host} points into a private network ({ip}); webhooks only go to public "
                "addresses. (A store can allow private addresses in Settings for a local "
                "integration.)", ErrorCode.INVALID_INPUT)


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e for e in events if e))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown or not chosen:
        raise InvalidInput("Choose at least one event: " + ", ".join(EVENT_TYPES) + ".",
                           ErrorCode.INVALID_INPUT)
    return chosen
