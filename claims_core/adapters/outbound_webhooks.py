"""Sending outbound webhooks (run by ``tick``; replays from Settings go out on the next tick).

Each due delivery is leased, its endpoint's host resolved and checked again (an address that has
moved into a private network since registration is refused), the body signed per Standard
Webhooks with the endpoint's secret (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``: the ``standardwebhooks`` package) and posted, outside any transaction.
A 2xx answer delivers it; anything else is retried with exponential backoff
(``domain.windows.retry_backoff``); an endpoint that keeps failing is disabled and the owners
emailed (``services.webhook_endpoints``). Redirects are not followed.
"""
from __future__ import annotations

import logging
import socket
from datetime import datetime
from typing import Callable, Iterable
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from ..domain import webhook_targets
from ..domain.errors import ClaimRuleError
from ..infra.db import utcnow
from ..services import webhook_endpoints
from ..services.webhook_endpoints import DeliveryJob, EndpointView

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


def send_pending(engine: Engine, *, now: datetime | None = None, limit: int = 100,
                 client: httpx.Client | None = None, resolver: Resolver = resolve) -> dict[str, int]:
    out = {"delivered": 0, "retry": 0, "failed": 0}
    now = now or utcnow()
    jobs = webhook_endpoints.take_due(engine, now=now, limit=limit)
    if not jobs:
        return out
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        for job in jobs:
            status = _send_one(engine, client, job, now, resolver)
            out[status] += 1
    finally:
        if own:
            client.close()
    return out


def _send_one(engine: Engine, client: httpx.Client, job: DeliveryJob, now: datetime,
              resolver: Resolver) -> str:
    host = urlsplit(job.url).hostname or ""
    try:
        webhook_targets.check_addresses(host, resolver(host), allow_private=job.allow_private)
    except ClaimRuleError as e:
        return _failed(engine, job, e.message, None, now, retryable=True)
    try:
        # signed with the real time of sending: receivers refuse old timestamps
        resp = client.post(job.url, content=job.payload.encode(), headers=signed_headers(job, utcnow()))
    except httpx.HTTPError as e:
        return _failed(engine, job, f"{type(e).__name__}: {e}", None, now, retryable=True)
    if 200 <= resp.status_code < 300:
        webhook_endpoints.record_delivered(engine, job.id, resp.status_code, now=now)
        return "delivered"
    return _failed(engine, job, f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code, now,
                   retryable=resp.status_code != 410)  # 410 Gone: the receiver wants no more


def _failed(engine, job, reason, code, now, *, retryable) -> str:
    status = webhook_endpoints.record_failed(engine, job.id, reason, status_code=code,
                                             retryable=retryable, now=now)
    log.warning("webhook %s to %s failed (%s): %s", job.message_id, job.url, status, reason)
    return "retry" if status == "pending" else "failed"
