"""17TRACK's register endpoint: sends the queued tracking numbers (``services.track17_registration``).

    POST {base}/track/v2.2/register    header 17token: TRACK17_API_KEY
    [{"number": "1Z…", "carrier": 100002}, …]                    (at most 40 per call)

Answer (17TRACK Tracking API v2.2, "Register")::

    {"code": 0, "data": {
        "accepted": [{"origin": 1, "number": "1Z…", "carrier": 100002, "tag": ""}, …],
        "rejected": [{"number": "…", "tag": "", "error": {"code": -18019903, "message": "…"}}]}}

``code`` other than 0 (e.g. -18010002 invalid key, -18010014 more than 40) or an HTTP error
(401 key or IP, 429 too frequent, 5xx) fails the whole call: every number is tried again with
backoff. A rejected number keeps 17TRACK's reason and code for staff; "already registered"
(-18019901) counts as registered. The carrier code is sent when the shipment's carrier is one
17TRACK knows by name (``carrier_feeds.CARRIERS_17TRACK``); without it 17TRACK detects it.

``CLAIMS_TRACK17_BASE_URL`` points the client at another server (the tests' fake 17TRACK).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine

from ..domain.text import read_text
from ..infra import config
from ..services import track17_registration as queue
from ..services.track17_registration import Pending, Result
from .carrier_feeds import CARRIERS_17TRACK

log = logging.getLogger("claims.track17")

BASE_URL = "https://api.17track.net"
REGISTER_PATH = "/track/v2.2/register"
TIMEOUT_S = 30

_CODES = {name.casefold(): code for code, name in CARRIERS_17TRACK.items()}
_CODES.update({"dhl": 100001, "fedex": 100003, "ups": 100002, "usps": 21051})


def carrier_code(carrier: str) -> int | None:
    """17TRACK's carrier code for a carrier's name, when it is one it knows (else None)."""
    return _CODES.get((carrier or "").strip().casefold())


def base_url() -> str:
    return (config.setting("CLAIMS_TRACK17_BASE_URL") or BASE_URL).rstrip("/")


def request_body(items: list[Pending]) -> list[dict[str, Any]]:
    body = []
    for it in items:
        entry: dict[str, Any] = {"number": it.tracking_number}
        code = carrier_code(it.carrier)
        if code is not None:
            entry["carrier"] = code
        body.append(entry)
    return body


def _text(value: Any, cap: int = 500) -> str:
    return read_text(value, cap)  # 17TRACK's words, read as every payload's text is


def read_answer(items: list[Pending], answer: Any) -> list[Result]:
    """17TRACK's answer to one call → one result per number sent."""
    by_number = {it.tracking_number.upper(): it for it in items}
    if not isinstance(answer, dict):
        return [Result(it.id, "retry", "17TRACK's answer is not a JSON object") for it in items]
    code = answer.get("code")
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    if code != 0:
        errors = data.get("errors") if isinstance(data.get("errors"), list) else []
        why = next((_text(e.get("message")) for e in errors if isinstance(e, dict)), "")
        reason = f"17TRACK refused the call (code {code}){': ' + why if why else ''}"
        return [Result(it.id, "retry", reason, code if isinstance(code, int) else None)
                for it in items]
    out: dict[int, Result] = {}
    for acc in data.get("accepted") or []:
        it = by_number.get(str(acc.get("number", "")).upper()) if isinstance(acc, dict) else None
        if it is not None:
            out[it.id] = Result(it.id, "registered")
    for rej in data.get("rejected") or []:
        if not isinstance(rej, dict):
            continue
        it = by_number.get(str(rej.get("number", "")).upper())
        if it is None:
            continue
        err = rej.get("error") if isinstance(rej.get("error"), dict) else {}
        err_code = err.get("code") if isinstance(err.get("code"), int) else None
        message = _text(err.get("message")) or "no reason given"
        if err_code == queue.ALREADY_REGISTERED:
            out[it.id] = Result(it.id, "registered", message, err_code)
        else:
            out[it.id] = Result(it.id, "rejected", message, err_code)
    return [out.get(it.id) or Result(it.id, "retry", "17TRACK's answer didn't mention this number")
            for it in items]


def register(client: httpx.Client, key: str, items: list[Pending]) -> list[Result]:
    """One call for at most 40 numbers; never raises (a failure is a ``retry`` for each)."""
    try:
        r = client.post(base_url() + REGISTER_PATH, json=request_body(items),
                        headers={"17token": key, "Content-Type": "application/json"})
    except httpx.HTTPError as e:
        return [Result(it.id, "retry", f"17TRACK unreachable: {type(e).__name__}: {e}"[:500])
                for it in items]
    if r.status_code != 200:
        reason = {401: "17TRACK refused the key (wrong key, IP not whitelisted or account "
                       "disabled): HTTP 401",
                  429: "17TRACK: too many requests (HTTP 429)"}.get(
            r.status_code, f"17TRACK answered HTTP {r.status_code}")
        return [Result(it.id, "retry", reason) for it in items]
    try:
        answer = r.json()
    except ValueError:
        answer = None
    return read_answer(items, answer)


def send_pending(engine: Engine, *, now: datetime | None = None,
                 stop: threading.Event | None = None, transport: httpx.BaseTransport | None = None
                 ) -> dict[str, int]:
    """Register every due number, 40 per call (the background job). Nothing without a key."""
    out = {"registered": 0, "rejected": 0, "retry": 0, "failed": 0}
    key = config.secret(queue.API_KEY)
    if not key:
        return out
    with httpx.Client(timeout=TIMEOUT_S, transport=transport) as client:
        while not (stop is not None and stop.is_set()):
            items = queue.take_due(engine, now=now, limit=queue.PER_REQUEST)
            if not items:
                break
            results = register(client, key, items)  # outside any transaction
            for k, v in queue.record(engine, results, now=now).items():
                out[k] += v
            if any(r.status == "retry" for r in results):
                log.warning("17TRACK register: %s", next(r.reason for r in results
                                                         if r.status == "retry"))
                break  # the service is refusing calls now: the backoff decides the next try
    return out


def background_job(ctx) -> dict:
    """The job (``adapters/jobs.JOBS``)."""
    return send_pending(ctx.engine, now=ctx.now, stop=ctx.stop)
