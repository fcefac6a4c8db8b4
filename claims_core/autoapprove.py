"""The owner's auto-approve rules, tried when a claim is filed.

A rule approves a claim when every condition holds: the claimed amount is strictly under the
rule's maximum; the issue type is one it covers (any, if none listed); photos are attached when
the issue needs them; the customer's email filed no other claim in the last ``quiet_months``; and
the customer asked for a resolution the rule grants. The first matching rule (by position)
approves with the customer's resolution, and the events name the rule. Staff can undo it
(``decisions.undo_approval``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from . import rules, states
from .db import read_session, write_session
from .models import AutoApproveRule, Claim

GRANTABLE = ("refund", "store_credit")


@dataclass(frozen=True)
class ClaimFacts:
    claimed_cents: int
    issue_type: str
    desired_resolution: str
    photo_count: int
    months_since_last_claim: float | None  # None: no other claim from this email


@dataclass(frozen=True)
class RuleSpec:
    name: str
    max_cents: int
    issue_types: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = GRANTABLE
    require_photos: bool = True
    quiet_months: int | None = 12


def rule_matches(rule: RuleSpec, facts: ClaimFacts) -> tuple[bool, str]:
    """Whether the rule approves a claim with these facts, and if not, the first reason why."""
    if not facts.claimed_cents < rule.max_cents:
        return False, f"amount {rules.format_cents(facts.claimed_cents)} is not under " \
                      f"{rules.format_cents(rule.max_cents)}"
    if rule.issue_types and facts.issue_type not in rule.issue_types:
        return False, "issue type not covered"
    if rule.require_photos and rules.photos_required(facts.issue_type) and facts.photo_count == 0:
        return False, "photos required"
    if rule.quiet_months is not None and facts.months_since_last_claim is not None \
            and facts.months_since_last_claim < rule.quiet_months:
        return False, f"another claim from this email in the last {rule.quiet_months} months"
    if facts.desired_resolution not in rule.resolutions:
        return False, "resolution asked isn't one this rule grants"
    return True, ""


def _spec(r: AutoApproveRule) -> RuleSpec:
    return RuleSpec(r.name, r.max_cents,
                    tuple(t for t in (r.issue_types or "").split(",") if t),
                    tuple(x for x in (r.resolutions or "").split(",") if x in GRANTABLE),
                    r.require_photos, r.quiet_months)


def facts_for(s: Session, claim: Claim) -> ClaimFacts:
    last = s.scalar(select(func.max(Claim.created_at)).where(Claim.email == claim.email,
                                                            Claim.id != claim.id,
                                                            Claim.created_at <= claim.created_at))
    months = None if last is None else (claim.created_at - last).days / (365.25 / 12)
    return ClaimFacts(claim.claimed_cents, claim.issue_type, claim.desired_resolution,
                      len(claim.evidence), months)


def try_rules(s: Session, claim: Claim, now: datetime) -> str | None:
    """Approve the new claim with the first matching active rule (same transaction). Returns the
    rule's name, or None."""
    active = s.scalars(select(AutoApproveRule).where(AutoApproveRule.active)
                       .order_by(AutoApproveRule.position, AutoApproveRule.id)).all()
    if not active:
        return None
    from .decisions import ResolutionInput, grant
    from .services import get_settings

    facts = facts_for(s, claim)
    for rule in active:
        ok, _why = rule_matches(_spec(rule), facts)
        if not ok:
            continue
        bonus = get_settings(s).store_credit_bonus_pct if claim.desired_resolution == "store_credit" else 0
        grant(s, claim, f"rule:{rule.name}",
              [ResolutionInput(claim.desired_resolution, claim.claimed_cents, bonus)],
              now=now + timedelta(microseconds=1), details={"rule": rule.name})
        return rule.name
    return None


# --- the owner's rule list ----------------------------------------------------------------------

def save_rule(engine: Engine, actor: str, spec: RuleSpec, *, active: bool = True) -> int:
    name = (spec.name or "").strip()
    if not 1 <= len(name) <= 100:
        raise rules.InvalidInput("Give the rule a name (up to 100 characters).")
    if spec.max_cents <= 0:
        raise rules.InvalidInput("The amount limit must be above zero.")
    bad = [t for t in spec.issue_types if t not in rules.ISSUE_TYPES]
    if bad:
        raise rules.InvalidInput(f"Unknown issue type: {', '.join(bad)}.")
    if not spec.resolutions or any(r not in GRANTABLE for r in spec.resolutions):
        raise rules.InvalidInput("A rule grants refunds and/or store credit.")
    if spec.quiet_months is not None and not 0 <= spec.quiet_months <= 120:
        raise rules.InvalidInput("The quiet period is 0 to 120 months.")
    with write_session(engine) as s:
        if s.scalars(select(AutoApproveRule.id).where(AutoApproveRule.name == name)).first():
            raise rules.InvalidInput(f"A rule named “{name}” exists already.")
        position = (s.scalar(select(func.max(AutoApproveRule.position))) or 0) + 1
        r = AutoApproveRule(name=name, active=active, max_cents=spec.max_cents,
                            issue_types=",".join(spec.issue_types),
                            resolutions=",".join(spec.resolutions),
                            require_photos=spec.require_photos, quiet_months=spec.quiet_months,
                            position=position)
        s.add(r)
        s.flush()
        states.record_event(s, actor=actor, action="rule_added",
                            details={"rule": name, "max_cents": spec.max_cents})
        return r.id


def set_rule_active(engine: Engine, actor: str, rule_id: int, active: bool) -> None:
    with write_session(engine) as s:
        r = s.get(AutoApproveRule, rule_id)
        if r is None:
            raise rules.InvalidInput("No such rule.")
        r.active = active
        states.record_event(s, actor=actor, action="rule_enabled" if active else "rule_disabled",
                            details={"rule": r.name})


def list_rules(engine: Engine) -> list[tuple[int, bool, RuleSpec]]:
    with read_session(engine) as s:
        return [(r.id, r.active, _spec(r)) for r in s.scalars(
            select(AutoApproveRule).order_by(AutoApproveRule.position, AutoApproveRule.id))]
