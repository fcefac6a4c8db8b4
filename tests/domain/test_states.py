"""The claim state machine: every legal move writes one event, every illegal one raises."""
import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from claims_core import domain
from claims_core.infra.db import write_session
from claims_core.infra.models import AppendOnlyError, Claim, Event
from claims_core.services import customer, events

from tests.support.factories import claim_request, make_order

LEGAL = {(a, b) for a, targets in domain.TRANSITIONS.items() for b in targets}
# Every (status, action) pair: the action table allows it or refuses it.
TAKEN = [(s, a) for s in domain.STATUSES for a in domain.Action
         if a != domain.Action.SUBMIT and s in domain.ACTIONS[a].sources]
REFUSED = [(s, a) for s in domain.STATUSES for a in domain.Action
           if a != domain.Action.SUBMIT and s not in domain.ACTIONS[a].sources]


def test_the_documented_paths_are_legal():
    path = ["submitted", "in_review", "needs_info", "in_review", "approved", "resolved"]
    for a, b in zip(path, path[1:]):
        assert domain.can_transition(a, b)
    for end in ("denied", "closed"):
        assert domain.can_transition("in_review", end)
    assert not domain.TRANSITIONS["resolved"]


@pytest.fixture
def claim_id(engine, now):
    built = make_order(engine)
    return customer.file_claim(engine, claim_request(built), now=now).claim_id


def _force_status(engine, claim_id, status):
    with write_session(engine) as s:
        s.execute(text("UPDATE claims SET status = :s WHERE id = :i"), {"s": status, "i": claim_id})


def _events(engine, claim_id):
    with write_session(engine) as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.claim_id == claim_id))


@pytest.mark.parametrize("from_status,action", REFUSED)
def test_illegal_action_raises_and_writes_nothing(engine, claim_id, from_status, action):
    _force_status(engine, claim_id, from_status)
    before = _events(engine, claim_id)
    with pytest.raises(domain.IllegalTransition) as e:
        with write_session(engine) as s:
            events.apply(s, s.get(Claim, claim_id), action, actor="staff:test")
    assert e.value.code == domain.ErrorCode.ILLEGAL_TRANSITION
    assert _events(engine, claim_id) == before
    with write_session(engine) as s:
        assert s.get(Claim, claim_id).status == from_status


@pytest.mark.parametrize("from_status,action", TAKEN)
def test_legal_action_writes_exactly_one_event(engine, claim_id, from_status, action):
    to_status = domain.ACTIONS[action].target
    _force_status(engine, claim_id, from_status)
    before = _events(engine, claim_id)
    with write_session(engine) as s:
        events.apply(s, s.get(Claim, claim_id), action, actor="staff:test",
                     details={"why": "test"})
    assert _events(engine, claim_id) == before + 1
    with write_session(engine) as s:
        ev = s.scalars(select(Event).where(Event.claim_id == claim_id).order_by(Event.id.desc())).first()
        assert (ev.from_status, ev.to_status, ev.actor) == (from_status, to_status, "staff:test")
        assert ev.action == domain.ACTIONS[action].records
        assert json.loads(ev.details) == {"why": "test"}
        assert ev.at.tzinfo is not None
        claim = s.get(Claim, claim_id)
        assert claim.status == to_status
        assert all(ci.is_open == (to_status in domain.OPEN_STATUSES) for ci in claim.items)


def test_transition_and_event_share_one_transaction(engine, claim_id):
    before = _events(engine, claim_id)
    with pytest.raises(RuntimeError):
        with write_session(engine) as s:
            events.apply(s, s.get(Claim, claim_id), domain.Action.START_REVIEW, actor="staff:test")
            raise RuntimeError("crash after the transition")
    assert _events(engine, claim_id) == before
    with write_session(engine) as s:
        assert s.get(Claim, claim_id).status == "submitted"


def test_event_log_cannot_be_edited_through_the_orm(engine, claim_id):
    with pytest.raises(AppendOnlyError):
        with write_session(engine) as s:
            ev = s.scalars(select(Event).where(Event.claim_id == claim_id)).first()
            ev.action = "tampered"
    with pytest.raises(AppendOnlyError):
        with write_session(engine) as s:
            s.delete(s.scalars(select(Event).where(Event.claim_id == claim_id)).first())


def test_event_log_cannot_be_edited_in_sql(engine, claim_id):
    with pytest.raises(DBAPIError, match="append-only"):
        with write_session(engine) as s:
            s.execute(text("UPDATE events SET action = 'tampered'"))
    with pytest.raises(DBAPIError, match="append-only"):
        with write_session(engine) as s:
            s.execute(text("DELETE FROM events"))
    assert _events(engine, claim_id) == 1
