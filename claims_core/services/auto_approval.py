"""The owner's list of auto-approve rules (Settings → Automation): add, switch on or off, list.

What a rule matches is a domain rule (``domain/auto_approval.py``); applying the rules to a new
claim is an event handler (``handlers.approve_by_rule``); undoing such an approval is
``decisions.undo_approval``.
"""
from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ..domain.auto_approval import GRANTABLE, RuleSpec
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.vocabulary import ISSUE_TYPES, AuditAction
from ..infra.db import read_session
from ..infra.models import AutoApproveRule
from .events import record_event
from .unit_of_work import transactional

QUIET_MONTHS = (0, 120)  # the quiet period a rule may ask for, in months
MAX_AMOUNT_MINOR = 10_000_000_000  # the largest "approve claims under", in minor units

def _check(spec: RuleSpec) -> str:
    name = (spec.name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("Give the rule a name (up to 100 characters).", ErrorCode.RULE_INVALID)
    if spec.max_cents <= 0:
        raise InvalidInput("The amount limit must be above zero.", ErrorCode.RULE_INVALID)
    if spec.max_cents > MAX_AMOUNT_MINOR:
        raise InvalidInput("The amount limit is too large.", ErrorCode.RULE_INVALID)
    bad = [t for t in spec.issue_types if t not in ISSUE_TYPES]
    if bad:
        raise InvalidInput(f"Unknown issue type: {', '.join(bad)}.", ErrorCode.RULE_INVALID)
    if not spec.resolutions or any(r not in GRANTABLE for r in spec.resolutions):
        raise InvalidInput("A rule grants refunds and/or store credit.", ErrorCode.RULE_INVALID)
    if spec.quiet_months is not None and not QUIET_MONTHS[0] <= spec.quiet_months <= QUIET_MONTHS[1]:
        raise InvalidInput(f"The quiet period is {QUIET_MONTHS[0]} to {QUIET_MONTHS[1]} months.",
                           ErrorCode.RULE_INVALID)
    return name


@transactional
def save_rule(s: Session, actor: str, spec: RuleSpec, *, active: bool = True) -> int:
    name = _check(spec)
    if s.scalars(select(AutoApproveRule.id).where(AutoApproveRule.name == name)).first():
        raise InvalidInput(f"A rule named “{name}” exists already.", ErrorCode.RULE_NAME_TAKEN)
    position = (s.scalar(select(func.max(AutoApproveRule.position))) or 0) + 1
    r = AutoApproveRule(name=name, active=active, max_cents=spec.max_cents,
                        issue_types=",".join(spec.issue_types),
                        resolutions=",".join(spec.resolutions),
                        require_photos=spec.require_photos, quiet_months=spec.quiet_months,
                        position=position)
    s.add(r)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.AUTO_APPROVAL_RULE_ADDED,
                 details={"rule": name, "max_cents": spec.max_cents})
    return r.id


@transactional
def set_rule_active(s: Session, actor: str, rule_id: int, active: bool) -> None:
    r = s.get(AutoApproveRule, rule_id)
    if r is None:
        raise InvalidInput("No such rule.", ErrorCode.NOT_FOUND)
    r.active = active
    record_event(s, actor=actor, details={"rule": r.name},
                 action=AuditAction.AUTO_APPROVAL_RULE_ENABLED if active
                 else AuditAction.AUTO_APPROVAL_RULE_DISABLED)


def list_rules(engine: Engine) -> list[tuple[int, bool, RuleSpec]]:
    with read_session(engine) as s:
        return [(r.id, r.active, r.spec) for r in s.scalars(
            select(AutoApproveRule).order_by(AutoApproveRule.position, AutoApproveRule.id))]
