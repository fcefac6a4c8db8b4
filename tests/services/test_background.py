"""Background work (issue #23, "It runs itself"): the job table, leases on the database's clock
renewed while a message is sent, a Message-ID fixed when queued, timers that lose a race move on,
the worker command, the web process's jobs (lifespan) and CLAIMS_BACKGROUND=off, configuration
from secrets.toml, and the Background work settings tab."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

from claims_core import cli
from claims_core.adapters import jobs, mailer, scheduler
from claims_core.infra import config, outbox
from claims_core.infra.db import utcnow, write_session
from claims_core.infra.models import BackgroundJob, Event, OutboxMessage
from claims_core.services import background, customer, decisions

from tests.conftest import NOW, _free_port, running_app
from tests.support.factories import claim_request, make_order
from tests.pages.test_staff_app import app, everything  # noqa: F401 - the staff pages under AppTest

ROOT = Path(__file__).resolve().parents[2]
SMTP_VARS = ("CLAIMS_SMTP_HOST", "CLAIMS_SMTP_PORT", "CLAIMS_SMTP_STARTTLS", "CLAIMS_SMTP_USER",
             "CLAIMS_SMTP_PASSWORD", "CLAIMS_SMTP_FROM", "CLAIMS_SMTP_TIMEOUT", "CLAIMS_REPLY_TO")


class Catcher:
    """An SMTP server that keeps what it receives; ``delay``: seconds each DATA takes (a slow
    server, without blocking its other connections); ``refuse_first``: answer the first try of
    each message with a temporary failure (after reading it)."""

    def __init__(self, delay: float = 0.0, refuse_first: bool = False):
        self.delay, self.refuse_first = delay, refuse_first
        self.messages = []
        self.seen = []  # every message received, accepted or not
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = message_from_bytes(envelope.content)
        with self.lock:
            first = msg["To"] not in {m["To"] for m in self.seen}
            self.seen.append(msg)
            if self.refuse_first and first:
                return "451 try again later"
            self.messages.append(msg)
        return "250 OK"

    def per_recipient(self) -> Counter:
        return Counter(m["To"] for m in self.messages)


@pytest.fixture
def smtp():
    started = []

    def start(**kw):
        catcher = Catcher(**kw)
        port = _free_port()
        ctl = Controller(catcher, hostname="127.0.0.1", port=port)
        ctl.start()
        started.append(ctl)
        return catcher, mailer.SmtpConfig(host="127.0.0.1", port=port, starttls=False,
                                          sender="Shop <claims@shop.example>", timeout=10)
    yield start
    for ctl in started:
        ctl.stop()


@pytest.fixture
def no_smtp_env(monkeypatch, tmp_path):
    for k in SMTP_VARS + ("CLAIMS_BACKGROUND",):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))


def file_claims(engine, n: int, prefix: str = "M") -> list:
    out = []
    for i in range(n):
        b = make_order(engine, f"{prefix}{i}", f"{prefix.lower()}{i}@example.com",
                       tracking_prefix=f"{prefix}{i}")
        out.append(customer.file_claim(engine, claim_request(b, key=f"{prefix}{i}"), now=NOW))
    return out


def stored_ids(engine) -> dict[str, str]:
    with write_session(engine) as s:
        return dict(s.execute(select(OutboxMessage.to_addr, OutboxMessage.message_id)).all())


def statuses(engine) -> Counter:
    with write_session(engine) as s:
        return Counter(s.scalars(select(OutboxMessage.status)))


# --- leases and Message-IDs ----------------------------------------------------------------------

def test_a_long_run_never_hands_out_lapsed_leases(engine, smtp, monkeypatch):
    """A backlog that takes longer than the lease: a second sender starting later must not send
    again what the first has taken (each lease counts from its own take, on the database's
    clock), and each message keeps the one Message-ID it was queued with."""
    monkeypatch.setattr(outbox, "DELIVERY_LEASE", timedelta(seconds=2))
    catcher, cfg = smtp(delay=0.3)
    file_claims(engine, 12)
    first = threading.Thread(target=mailer.send_pending, args=(engine, cfg))
    first.start()
    time.sleep(2.5)  # the first sender's run is older than a lease by now
    second = threading.Thread(target=mailer.send_pending, args=(engine, cfg))
    second.start()
    first.join()
    second.join()
    assert catcher.per_recipient() == Counter({f"m{i}@example.com": 1 for i in range(12)})
    ids = stored_ids(engine)
    assert {m["To"]: m["Message-ID"] for m in catcher.messages} == ids
    assert statuses(engine) == Counter({"sent": 12})


def test_a_send_slower_than_the_lease_is_not_taken_over(engine, smtp, monkeypatch):
    """The holder renews its lease while the server takes its time."""
    monkeypatch.setattr(outbox, "DELIVERY_LEASE", timedelta(seconds=2))
    catcher, cfg = smtp(delay=4.5)
    file_claims(engine, 1)
    first = threading.Thread(target=mailer.send_pending, args=(engine, cfg))
    first.start()
    time.sleep(3)  # past the first lease while the server is still reading the message
    assert mailer.send_pending(engine, cfg) == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    first.join()
    assert len(catcher.seen) == 1 and statuses(engine) == Counter({"sent": 1})


def test_the_message_id_is_decided_when_queued_on_the_shops_domain(engine, smtp, monkeypatch,
                                                                     no_smtp_env):
    monkeypatch.setenv("CLAIMS_SMTP_FROM", "Shop <claims@myshop.example>")
    catcher, cfg = smtp(refuse_first=True)
    [r] = file_claims(engine, 1)
    [stored] = stored_ids(engine).values()
    assert stored.startswith("<") and stored.endswith("@myshop.example>")
    assert mailer.send_pending(engine, cfg, now=NOW)["retry"] == 1
    assert mailer.send_pending(engine, cfg, now=NOW + timedelta(hours=1))["sent"] == 1
    assert [m["Message-ID"] for m in catcher.seen] == [stored, stored]  # a retry is the same mail
    monkeypatch.setenv("CLAIMS_REPLY_TO", "Help <help@replies.myshop.example>")
    assert config.mail_domain() == "replies.myshop.example"
    monkeypatch.delenv("CLAIMS_REPLY_TO")
    monkeypatch.delenv("CLAIMS_SMTP_FROM")
    assert config.mail_domain() == "claims.local"


# --- timers that lose a race ----------------------------------------------------------------------

def test_two_ticks_at_once_do_each_thing_once_without_crashing(engine):
    """On PostgreSQL two ticks reminding the same claims used to crash one with StaleClaim."""
    claims = file_claims(engine, 12, "W")
    for r in claims:
        decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "The label please", now=NOW)
    later = NOW + timedelta(days=5, hours=1)
    reports, errors = [], []
    barrier = threading.Barrier(3)

    def run():
        barrier.wait()
        try:
            reports.append(scheduler.tick(engine, now=later))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and all(r.failed == [] for r in reports)
    assert sorted(ref for r in reports for ref in r.reminded) == sorted(r.reference for r in claims)
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "reminder_sent")) == 12
        assert s.scalar(select(func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.kind == "reminder")) == 12


# --- the job table --------------------------------------------------------------------------------

def test_a_failing_job_is_recorded_and_never_stops_the_others(engine):
    ran = []

    def boom(ctx):
        raise RuntimeError("the mail server's certificate expired")

    table = (jobs.Job("boom", boom, every=0.2),
             jobs.Job("fine", lambda ctx: ran.append(1) or {"done": len(ran)}, every=0.2))
    assert jobs.run_all(jobs.JobContext(engine), table) == ["boom"]
    bg = jobs.Background(engine, table).start()
    time.sleep(1.5)
    bg.shutdown()
    runs = background.job_runs(engine)
    assert runs["boom"].failures >= 2 and runs["boom"].last_success_at is None  # retried
    assert "certificate expired" in runs["boom"].last_error
    assert runs["fine"].failures == 0 and runs["fine"].runs >= 3 and runs["fine"].last_success_at
    assert runs["fine"].last_result == f'{{"done": {len(ran)}}}'


def test_tick_runs_every_job_in_the_table_and_records_it(engine):
    report = scheduler.tick(engine, now=NOW)
    assert report.failed == []
    assert set(background.job_runs(engine)) == {j.name for j in jobs.JOBS}


def test_shutdown_finishes_the_message_in_hand_and_leaves_the_rest_queued(engine, smtp,
                                                                        monkeypatch):
    catcher, cfg = smtp(delay=0.7)
    file_claims(engine, 6)
    mail_only = (jobs.Job("mail", jobs.JOBS_BY_NAME["mail"].run, every=5),)
    bg = jobs.Background(engine, mail_only, smtp=cfg, smtp_given=True).start()
    deadline = time.time() + 10
    while statuses(engine)["sending"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    bg.shutdown()
    counts = statuses(engine)
    assert counts["sending"] == 0 and counts["sent"] == len(catcher.messages) >= 1
    assert counts["pending"] == 6 - counts["sent"] > 0
    with write_session(engine) as s:  # given back untouched, for the next run
        assert set(s.scalars(select(OutboxMessage.attempts)
                             .where(OutboxMessage.status == "pending"))) == {0}


# --- configuration: the environment or secrets.toml ------------------------------------------------

def test_smtp_from_secrets_toml_makes_tick_deliver(engine, db_url, smtp, monkeypatch, tmp_path,
                                                  no_smtp_env):
    catcher, cfg = smtp()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'CLAIMS_SMTP_HOST = "127.0.0.1"\nCLAIMS_SMTP_PORT = {cfg.port}\n'
                       'CLAIMS_SMTP_STARTTLS = false\nCLAIMS_SMTP_FROM = "claims@secret.example"\n')
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("DATABASE_URL", db_url)
    file_claims(engine, 1)
    assert cli.main(["tick"]) == 0
    assert [m["To"] for m in catcher.messages] == ["m0@example.com"]
    assert catcher.messages[0]["From"] == "claims@secret.example"
    assert catcher.messages[0]["Message-ID"].endswith("@secret.example>")
    monkeypatch.setenv("CLAIMS_SMTP_HOST", "mail.env.example")  # the environment comes first
    assert mailer.smtp_from_env().host == "mail.env.example"


def test_background_setting(monkeypatch, tmp_path, no_smtp_env):
    assert config.background_enabled()
    for off in ("off", "0", "false", "no", "OFF"):
        monkeypatch.setenv("CLAIMS_BACKGROUND", off)
        assert not config.background_enabled()
    monkeypatch.delenv("CLAIMS_BACKGROUND")
    secrets = tmp_path / "s.toml"
    secrets.write_text('CLAIMS_BACKGROUND = "off"\n')
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(secrets))
    assert not config.background_enabled()


# --- no half app at the default entry point ------------------------------------------------------

def test_no_default_entry_point_serves_half_the_app():
    """Streamlit Community Cloud opens streamlit_app.py by default: it must not exist (or be the
    whole app), so the pages are only ever served by app.py with its routes."""
    assert not (ROOT / "streamlit_app.py").exists()
    assert '"navigation.py"' in (ROOT / "app.py").read_text()
    assert (ROOT / "navigation.py").exists()


# --- the running app, the worker, several instances -------------------------------------------------

def _env(db_url: str, port: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SMTP_VARS}
    env.update({"DATABASE_URL": db_url, "CLAIMS_SMTP_HOST": "127.0.0.1",
                "CLAIMS_SMTP_PORT": str(port), "CLAIMS_SMTP_STARTTLS": "0",
                "CLAIMS_SMTP_FROM": "claims@shop.example",
                "CLAIMS_SECRETS_FILE": "/nonexistent/secrets.toml"}, **extra)
    return env


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def test_the_web_app_sends_mail_by_itself(engine, db_url, smtp, tmp_path):
    catcher, cfg = smtp()
    with running_app(_env(db_url, cfg.port), tmp_path / "app.log"):
        [r] = file_claims(engine, 1)
        assert _wait_for(lambda: catcher.messages, 60), (tmp_path / "app.log").read_text()
    assert [m["To"] for m in catcher.messages] == ["m0@example.com"]
    assert r.reference in catcher.messages[0]["Subject"]
    runs = background.job_runs(engine)
    assert runs["mail"].last_success_at is not None and runs["timers"].runs >= 1
    assert statuses(engine) == Counter({"sent": 1})


def test_background_off_runs_no_jobs_in_the_web_app(engine, db_url, smtp, tmp_path):
    catcher, cfg = smtp()
    with running_app(_env(db_url, cfg.port, CLAIMS_BACKGROUND="off"), tmp_path / "app.log"):
        file_claims(engine, 1)
        time.sleep(12)  # two mail polls and more
    assert catcher.messages == [] and background.job_runs(engine) == {}
    assert statuses(engine) == Counter({"pending": 1})


def _worker(env, log):
    return subprocess.Popen([sys.executable, "-m", "claims_core", "worker"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def test_the_worker_command_delivers_and_stops_on_sigterm(engine, db_url, smtp, tmp_path):
    catcher, cfg = smtp()
    with open(tmp_path / "worker.log", "w") as log:
        proc = _worker(_env(db_url, cfg.port), log)
        try:
            file_claims(engine, 2)
            assert _wait_for(lambda: len(catcher.messages) == 2, 60), \
                (tmp_path / "worker.log").read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    assert "worker stopped" in (tmp_path / "worker.log").read_text()
    assert statuses(engine) == Counter({"sent": 2})


def test_two_workers_and_a_tick_on_one_database_deliver_each_mail_once(engine, db_url, smtp,
                                                                       tmp_path):
    """Several instances on one database (PostgreSQL when the suite runs on it): every email
    delivered exactly once, with its one Message-ID, and no job crashes."""
    catcher, cfg = smtp(delay=0.05)
    claims = file_claims(engine, 24, "P")
    for r in claims[:8]:  # and timers due at once for all three
        decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "The label please",
                               now=utcnow() - timedelta(days=5, hours=1))
    env = _env(db_url, cfg.port)
    logs = [open(tmp_path / f"w{i}.log", "w") for i in range(2)]
    procs = [_worker(env, log) for log in logs]
    try:
        tick = subprocess.run([sys.executable, "-m", "claims_core", "tick"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        expected = 24 + 8 + 8  # received, info requested, reminder
        assert _wait_for(lambda: len(catcher.messages) >= expected, 90)
        time.sleep(6)  # a little longer: any second copy would arrive now
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
        [log.close() for log in logs]
    assert tick.returncode == 0, tick.stdout + tick.stderr
    assert codes == [0, 0]
    assert len(catcher.messages) == expected
    ids = Counter(m["Message-ID"] for m in catcher.messages)
    assert len(ids) == expected and set(ids) == set(
        dict(stored_ids_all(engine)).values())
    with write_session(engine) as s:
        assert s.scalar(select(func.sum(BackgroundJob.failures))) == 0
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "reminder_sent")) == 8
    for i in range(2):
        assert "Traceback" not in (tmp_path / f"w{i}.log").read_text()


def stored_ids_all(engine):
    with write_session(engine) as s:
        return s.execute(select(OutboxMessage.id, OutboxMessage.message_id)).all()


# --- what staff see ---------------------------------------------------------------------------------

def test_mail_failing_for_an_hour_is_noticed(engine):
    file_claims(engine, 1)
    assert background.mail_failing_since(engine, now=NOW + timedelta(hours=3)) is None  # never tried
    with write_session(engine) as s:
        s.execute(update(OutboxMessage).values(attempts=3, last_error="SMTPConnectError"))
    assert background.mail_failing_since(engine, now=NOW + timedelta(minutes=30)) is None
    assert background.mail_failing_since(engine, now=NOW + timedelta(hours=2)) == NOW
    file_claims(engine, 1, "S")
    with write_session(engine) as s:  # another mail went out in the last hour: mail works
        s.execute(update(OutboxMessage).where(OutboxMessage.to_addr == "s0@example.com")
                  .values(status="sent", sent_at=NOW + timedelta(hours=1, minutes=30)))
    assert background.mail_failing_since(engine, now=NOW + timedelta(hours=2)) is None


def test_background_work_tab_shows_jobs_and_retries_a_failed_mail(app, engine, monkeypatch,  # noqa: F811
                                                                   no_smtp_env):
    file_claims(engine, 1)
    scheduler.tick(engine, now=NOW)
    with write_session(engine) as s:
        s.execute(update(OutboxMessage).values(status="failed", attempts=8,
                                               created_at=utcnow() - timedelta(hours=3),
                                               next_attempt_at=utcnow(),
                                               last_error="SMTPRecipientsRefused"))
    at = app("owner", "views/staff/settings.py")
    assert "Email has been failing since" in everything(at)  # on every staff page
    frames = [d.value for d in at.dataframe]
    jobs_frame = next(f for f in frames if "Job" in f.columns)
    assert set(jobs_frame["Job"]) == {j.name for j in jobs.JOBS}
    failed = next(f for f in frames if "To" in f.columns)
    assert list(failed["To"]) == ["m0@example.com"]
    at.button(key="bg_mail_retry").click().run()
    assert not at.exception
    assert statuses(engine) == Counter({"pending": 1})
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "mail_retried")) == 1
    agent = app("agent", "views/staff/queue.py")
    assert "Email has been failing" not in everything(agent)  # retried: not failing any more
