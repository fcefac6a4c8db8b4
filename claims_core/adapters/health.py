"""Health you can see: ``/healthz``, ``/readyz`` and ``/metrics`` (routes of the ``st.App``).

- ``GET /healthz``: the process answers (200), without touching the database — for a supervisor
  deciding whether to restart the process.
- ``GET /readyz``: the database answers within ``READY_TIMEOUT`` seconds and its migrations are
  current → 200 ``{"status": "ready", …}``; else 503 with the reason as JSON — for a load
  balancer deciding whether to send visitors here.
- ``GET /metrics``: Prometheus' text format, read from the database at scrape time (several
  instances report the same numbers; nothing is counted in a process). Off (404) unless
  ``CLAIMS_METRICS_TOKEN`` is set; then it needs ``Authorization: Bearer <token>`` (401 otherwise).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..infra import config
from ..infra.db import is_read_only
from ..services import health as health_counts
from . import db_state

log = logging.getLogger("claims.health")

READY_TIMEOUT = 3.0  # seconds /readyz waits for the database
NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


def _unready(reason: str, **detail) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason, **detail}, status_code=503,
                        headers=NO_STORE)


async def readyz(request: Request, engine_of: Callable[[], Engine]) -> Response:
    try:
        engine = engine_of()
        current, head = await asyncio.wait_for(
            run_in_threadpool(db_state.schema_state, engine), timeout=READY_TIMEOUT)
    except asyncio.TimeoutError:
        return _unready(str(db_state.code(db_state.DbState.UNREACHABLE)),
                        detail=f"the database didn't answer within {READY_TIMEOUT:g} s")
    except Exception as e:  # noqa: BLE001 - any failure means "not ready", said as a code
        state = db_state.classify(e)
        log.warning("readyz: %s (%s)", state.value, type(e).__name__)
        return _unready(str(db_state.code(state)), state=state.value)
    if current is None:
        return _unready(str(db_state.code(db_state.DbState.NOT_SET_UP)),
                        detail="run `python -m claims_core init`", head=head)
    if current != head:
        return _unready("migrations_pending", detail="run `python -m claims_core init`",
                        current=current, head=head)
    return JSONResponse({"status": "ready", "revision": current,
                         "read_only": is_read_only(engine)}, headers=NO_STORE)


# --- metrics --------------------------------------------------------------------------------------

class ClaimsCollector:
    """Reads the numbers from the database at each scrape (a Prometheus custom collector)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        up = GaugeMetricFamily("claims_database_up",
                               "1 if the database answered this scrape's queries, else 0")
        try:
            families = self._read()
        except Exception as e:  # noqa: BLE001 - a scrape reports the database down, never fails
            log.warning("metrics: the database didn't answer (%s)", type(e).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list:
        backlog = GaugeMetricFamily(
            "claims_outbox_messages", "Rows in each outbox by kind of work and status "
            "(email, shopify_write, webhook_delivery)", labels=["kind", "status"])
        jobs = GaugeMetricFamily("claims_job_last_success_timestamp_seconds",
                                 "When each background job last succeeded (Unix time)",
                                 labels=["job"])
        received = CounterMetricFamily("claims_webhooks_received",
                                       "Inbound webhooks stored, by source and outcome",
                                       labels=["source", "outcome"])
        filed = CounterMetricFamily("claims_filed", "Claims filed")
        by_status = GaugeMetricFamily("claims_claims", "Claims by status", labels=["status"])
        counts = health_counts.counts(self.engine)
        for kind, status, n in counts.backlog:
            backlog.add_metric([kind, status], n)
        for name, at in counts.last_success:
            jobs.add_metric([name], at.timestamp())
        for source, outcome, n in counts.webhooks_received:
            received.add_metric([source, outcome], n)
        for status, n in counts.claims_by_status:
            by_status.add_metric([status], n)
        filed.add_metric([], counts.claims_filed)
        return [backlog, jobs, received, filed, by_status]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


async def metrics(request: Request, engine_of: Callable[[], Engine]) -> Response:
    token = config.metrics_token()
    if not token:
        return PlainTextResponse("Not Found", status_code=404)
    if not hmac.compare_digest(_bearer(request).encode(), token.encode()):
        return PlainTextResponse("Unauthorized", status_code=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = await run_in_threadpool(generate_latest, ClaimsCollector(engine_of()))
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


def routes(engine_of: Callable[[], Engine]) -> list[Route]:
    """The three routes, on the engine ``engine_of()`` gives (the web routes' engine)."""
    async def ready(request: Request) -> Response:
        return await readyz(request, engine_of)

    async def scrape(request: Request) -> Response:
        return await metrics(request, engine_of)

    return [Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", ready, methods=["GET", "HEAD"]),
            Route("/metrics", scrape, methods=["GET"])]
