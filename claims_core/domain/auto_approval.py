"""The owner's auto-approve rules, as rules: when does a rule approve a claim?

A rule approves a claim when every condition holds: the claimed amount is strictly under the
rule's maximum; the issue type is one it covers (any, if none listed); photos are attached when
the issue needs them; the customer's email filed no other claim in the last ``quiet_months``; and
the customer asked for a resolution the rule grants.
"""
from __future__ import annotations

from dataclasses import dataclass

from .eligibility import photos_required
from .money import format_minor
from .vocabulary import ResolutionKind

GRANTABLE = (ResolutionKind.REFUND, ResolutionKind.STORE_CREDIT)


@dataclass(frozen=True)
class ClaimFacts:
    claimed_cents: int
    issue_type: str
    desired_resolution: str
    photo_count: int
    months_since_last_claim: float | None  # None: no other claim from this email
    currency: str = "USD"  # the order's (rules are in the store's: one currency per shop)


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
        return False, f"amount {format_minor(facts.claimed_cents, facts.currency)} is not under " \
                      f"{format_minor(rule.max_cents, facts.currency)}"
    if rule.issue_types and facts.issue_type not in rule.issue_types:
        return False, "issue type not covered"
    if rule.require_photos and photos_required(facts.issue_type) and facts.photo_count == 0:
        return False, "photos required"
    if rule.quiet_months is not None and facts.months_since_last_claim is not None \
            and facts.months_since_last_claim < rule.quiet_months:
        return False, f"another claim from this email in the last {rule.quiet_months} months"
    if facts.desired_resolution not in rule.resolutions:
        return False, "resolution asked isn't one this rule grants"
    return True, ""


def spec_from_columns(name: str, max_cents: int, issue_types: str, resolutions: str,
                      require_photos: bool, quiet_months: int | None) -> RuleSpec:
    """A rule as stored (comma-separated lists) as a ``RuleSpec``."""
    return RuleSpec(name, max_cents, tuple(t for t in (issue_types or "").split(",") if t),
                    tuple(x for x in (resolutions or "").split(",") if x in GRANTABLE),
                    require_photos, quiet_months)
