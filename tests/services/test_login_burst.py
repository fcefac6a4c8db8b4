"""Staff log-in under a burst: each try is booked before its password is checked, so a burst from
one client checks no more passwords than the limit; guesses spread over many clients slow to a
trickle for that username, while the user's own machine still gets in; an IPv6 client counts as
its /64. Runs on SQLite and PostgreSQL (threads against the service function)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from claims_core.domain import identifiers
from claims_core.services import accounts

from tests.conftest import NOW

RIGHT = "a long password"


class CountingHasher:
    """The real Argon2 hasher, counting the checks against the user's real hash; a check of a
    wrong password can be held until ``release`` is set."""

    def __init__(self, real, stored: str, hold_wrong: bool = False):
        self.real, self.stored = real, stored
        self.checked, self.lock = [], threading.Lock()
        self.release = threading.Event()
        self.hold_wrong = hold_wrong
        if not hold_wrong:
            self.release.set()

    def verify(self, stored, password):
        if stored == self.stored:
            with self.lock:
                self.checked.append(password)
            if password != RIGHT:
                assert self.release.wait(30)
        return self.real.verify(stored, password)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def owner(engine, monkeypatch):
    accounts.add_user(engine, "owner", "owner", RIGHT)
    from claims_core.infra.db import read_session
    from claims_core.infra.models import StaffUser
    from sqlalchemy import select
    with read_session(engine) as s:
        stored = s.scalar(select(StaffUser.password_hash).where(StaffUser.username == "owner"))
    return stored


def _fire(n, fn):
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except accounts.AuthError as e:
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_a_burst_of_ten_wrong_passwords_checks_only_five(engine, owner, monkeypatch):
    hasher = CountingHasher(accounts._hasher, owner)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    threads, results = _fire(10, lambda i: accounts.authenticate(
        engine, "owner", f"guess number {i}", client="203.0.113.9", now=NOW, sleep=lambda s: None))
    for t in threads:
        t.join(60)
    assert all(isinstance(r, accounts.AuthError) for r in results)
    assert len(hasher.checked) == accounts.MAX_FAILED_LOGINS  # not 10


def test_nine_wrong_and_the_right_one_in_one_burst_do_not_get_in(engine, owner, monkeypatch):
    """The nine wrong ones are still being checked (held) when the right one arrives: five are
    booked, so the right one is refused unchecked (it used to get in: nothing was on record
    until a check had finished)."""
    hasher = CountingHasher(accounts._hasher, owner, hold_wrong=True)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    threads, results = _fire(9, lambda i: accounts.authenticate(
        engine, "owner", f"guess number {i}", client="203.0.113.9", now=NOW, sleep=lambda s: None))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every wrong try is being checked or was refused
        with hasher.lock:
            in_check = len(hasher.checked)
        if in_check + sum(r is not None for r in results) == 9:
            break
        time.sleep(0.02)
    try:
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "owner", RIGHT, client="203.0.113.9", now=NOW,
                                  sleep=lambda s: None)
    finally:
        hasher.release.set()
        for t in threads:
            t.join(60)
    assert len(hasher.checked) == accounts.MAX_FAILED_LOGINS  # the right one wasn't checked
    assert all(isinstance(r, accounts.AuthError) for r in results)
    # the owner, from their own machine, is not held up
    assert accounts.authenticate(engine, "owner", RIGHT, client="198.51.100.4", now=NOW,
                                 sleep=lambda s: None).username == "owner"


def test_guesses_spread_over_many_clients_slow_to_a_trickle(engine, owner, monkeypatch):
    """A hundred addresses, one guess each, two a second: without a cap per username all 100
    would be checked."""
    hasher = CountingHasher(accounts._hasher, owner)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    # the owner logged in from the office earlier today
    accounts.authenticate(engine, "owner", RIGHT, client="198.51.100.4",
                          now=NOW - timedelta(hours=2))
    hasher.checked.clear()
    for i in range(100):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "owner", f"guess {i}", client=f"192.0.2.{i}",
                                  now=NOW + timedelta(seconds=i / 2), sleep=lambda s: None)
    # 10 freely, then one at a time after 1, 2, 4, 8, 16, 32 s
    assert accounts.USER_SLOW_AFTER <= len(hasher.checked) <= accounts.USER_SLOW_AFTER + 6
    mid_attack = NOW + timedelta(seconds=50)
    # the owner's own machine gets in at once
    assert accounts.authenticate(engine, "owner", RIGHT, client="198.51.100.4",
                                 now=mid_attack).username == "owner"
    # a new machine waits its turn (refused unchecked, same words), then gets in
    with pytest.raises(accounts.AuthError) as e:
        accounts.authenticate(engine, "owner", RIGHT, client="203.0.113.50", now=mid_attack)
    assert e.value.message == accounts.LOGIN_FAILED
    later = mid_attack + accounts.USER_MAX_INTERVAL
    assert accounts.authenticate(engine, "owner", RIGHT, client="203.0.113.50",
                                 now=later).username == "owner"
    assert [u.locked for u in accounts.list_users(engine, now=mid_attack)] == [True]


def test_the_interval_grows_and_is_capped():
    assert accounts.user_interval(accounts.USER_SLOW_AFTER - 1) == timedelta(0)
    steps = [accounts.user_interval(accounts.USER_SLOW_AFTER + i) for i in range(12)]
    assert steps == sorted(steps) and steps[0] > timedelta(0)
    assert steps[-1] == accounts.USER_MAX_INTERVAL


def test_an_ipv6_client_counts_as_its_64(engine, owner):
    for i in range(accounts.MAX_FAILED_LOGINS):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "owner", "guess guess", client=f"2001:db8:7:7::{i + 1:x}",
                                  now=NOW, sleep=lambda s: None)
    with pytest.raises(accounts.AuthError):  # another address in the same /64: locked too
        accounts.authenticate(engine, "owner", RIGHT, client="2001:db8:7:7:dead:beef::1", now=NOW,
                              sleep=lambda s: None)
    assert accounts.authenticate(engine, "owner", RIGHT, client="2001:db8:7:8::1",
                                 now=NOW).username == "owner"


def test_client_network():
    client_network, client_key = identifiers.client_network, identifiers.client_key
    assert client_network("2001:db8:1:2:a:b:c:d") == client_network("2001:db8:1:2::1") \
        == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("::ffff:198.51.100.7") == "198.51.100.7" == client_network("198.51.100.7")
    assert client_network(None) == client_network("") == "unknown"
    assert client_key("198.51.100.7") != client_key("198.51.100.8")
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")


def test_a_new_password_clears_the_count_across_clients(engine, owner):
    for i in range(accounts.USER_SLOW_AFTER + 3):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "owner", "guess", client=f"192.0.2.{i}", now=NOW,
                                  sleep=lambda s: None)
    with pytest.raises(accounts.AuthError):
        accounts.authenticate(engine, "owner", RIGHT, client="203.0.113.1", now=NOW)
    accounts.change_password(engine, "owner", "another long passphrase", actor="cli")
    assert accounts.authenticate(engine, "owner", "another long passphrase", client="203.0.113.1",
                                 now=NOW).username == "owner"
