"""Sending outbound webhooks (run by ``tick``; replays from Settings go out on the next tick).

Each due delivery is leased, its endpoint's host resolved and checked again (an address that has
moved into a private network since registration is refused) and the connection made to the
address that was checked (the host name kept for the Host header and TLS: no second look-up for
DNS rebinding to answer differently), the body signed per Standard
Webhooks with the endpoint's secret (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``: the ``standardwebhooks`` package) and posted, outside any transaction.
A 2xx answer delivers it; anything else is retried with exponential backoff
(``domain.windows.retry_backoff``); an endpoint that keeps failing is disabled and the owners
emailed (``services/outbound_webhooks.py`` keeps that record). Redirects are not followed.
"""
from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime
from typing import Callable, Iterable
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from ..domain import webhook_targets
from ..domain.errors import ClaimRuleError
from ..infra.db import utcnow
from ..services import outbound_webhooks as outbox
from ..services import webhook_endpoints
from ..services.outbound_webhooks import DeliveryJob
from ..services.webhook_endpoints import EndpointView

log = logging.getLogger("claims.webhooks.out")
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "claims-portal-webhooks/1"

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to ([] when it doesn't)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def add_endpoint(engine: Engine, url: str, events: Iterable[str], actor: str, *,
                 description: str = "", resolver: Resolver = resolve) -> EndpointView:
    """Register an endpoint: its host is resolved here (outside the transaction) and every address
    checked."""
    allow = webhook_endpoints.private_targets_allowed(engine)
    host = webhook_targets.check_url(url, allow_private=allow)
    return webhook_endpoints.add_endpoint(engine, url, list(events), actor,
                                          resolved=resolver(host), description=description)


def signed_headers(job: DeliveryJob, at: datetime) -> dict[str, str]:
    signature = Webhook(job.secret).sign(job.message_id, at, job.payload)
    return {"webhook-id": job.message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature, "content-type": "application/json",
            "user-agent": USER_AGENT}


def _take_one(engine: Engine, now: datetime) -> DeliveryJob | None:
    jobs = outbox.take_due(engine, now=now, limit=1)
    return jobs[0] if jobs else None


def send_pending(engine: Engine, *, now: datetime | None = None, limit: int = 100,
                 client: httpx.Client | None = None, resolver: Resolver = resolve,
                 stop: threading.Event | None = None) -> dict[str, int]:
    """Send the due deliveries, taken one at a time (each lease from the database's clock as it is
    taken, renewed while the receiver answers); ``stop`` (shutting down) ends the run between
    deliveries."""
    out = {"delivered": 0, "retry": 0, "failed": 0}
    now = now or utcnow()
    first = _take_one(engine, now)
    if first is None:
        return out
    # One client per host name when we make them: a kept-alive TLS connection (its certificate
    # checked for one name) is never reused for another name that happens to share the address.
    clients: dict[str, httpx.Client] = {}

    def client_for(host: str) -> httpx.Client:
        if client is not None:
            return client
        if host not in clients:
            clients[host] = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        return clients[host]

    try:
        job: DeliveryJob | None = first
        for _ in range(limit):
            job = job or _take_one(engine, now)
            if job is None:
                break
            with outbox.holding(engine, job):
                status = _send_one(engine, client_for, job, now, resolver)
            out[status] += 1
            job = None
            if stop is not None and stop.is_set():
                break
    finally:
        for c in clients.values():
            c.close()
    return out


def pinned_request(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with its host replaced by ``address`` (the one that was checked), with the Host
    header and the TLS server name (SNI, and the name the certificate is checked against) kept as
    the real host: the connection goes where the check said, without a second DNS look-up that
    could answer differently (DNS rebinding)."""
    u = httpx.URL(url)
    ip = address.split("%")[0]
    pinned = u.copy_with(host=ip)
    host_header = u.netloc.decode("ascii")  # host[:port], IDNA-encoded, no user info
    return str(pinned), {"host": host_header}, {"sni_hostname": u.raw_host.decode("ascii")}


def _send_one(engine: Engine, client_for: Callable[[str], httpx.Client], job: DeliveryJob,
              now: datetime, resolver: Resolver) -> str:
    host = urlsplit(job.url).hostname or ""
    addresses = resolver(host)
    try:
        webhook_targets.check_addresses(host, addresses, allow_private=job.allow_private)
    except ClaimRuleError as e:
        return _failed(engine, job, e.message, None, now, retryable=True)
    client = client_for(host)
    resp = None
    for i, address in enumerate(addresses):  # the checked addresses in turn, as a browser would
        url, host_header, extensions = pinned_request(job.url, address)
        try:
            # signed with the real time of sending: receivers refuse old timestamps
            resp = client.post(url, content=job.payload.encode(), extensions=extensions,
                               headers={**signed_headers(job, utcnow()), **host_header})
            break
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            if i == len(addresses) - 1:
                return _failed(engine, job, f"{type(e).__name__}: {e}", None, now, retryable=True)
        except httpx.HTTPError as e:
            return _failed(engine, job, f"{type(e).__name__}: {e}", None, now, retryable=True)
    if 200 <= resp.status_code < 300:
        outbox.record_delivered(engine, job.id, resp.status_code, now=now)
        return "delivered"
    return _failed(engine, job, f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code, now,
                   retryable=resp.status_code != 410)  # 410 Gone: the receiver wants no more


def _failed(engine, job, reason, code, now, *, retryable) -> str:
    status = outbox.record_failed(engine, job.id, reason, status_code=code, retryable=retryable,
                                  now=now)
    log.warning("webhook %s to %s failed (%s): %s", job.message_id, job.url, status, reason)
    return "retry" if status == "pending" else "failed"
