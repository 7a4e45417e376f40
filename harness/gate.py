"""The release gate: `gate(metrics, config, review) -> GateResult`, with a sentence per rule.

The rules are the `GateRule`s declared in `candidate_metrics` (in declaration order); each
drop is judged at the pessimistic end of its paired interval by default (`bound =
"upper_ci"`): a gate must be convinced, not merely unsurprised. A value exactly at its limit
passes. A rule that cannot be evaluated (no hard item scored) fails: an error is never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.candidate_metrics import GATE_RULES
from harness.errors import HarnessError
from harness.records import CandidateMetrics, GateConfig
from harness.review import ReviewStatus


class UnknownGateKey(HarnessError):
    """A limit for a key no rule declares."""


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str  # the [gate] key
    passed: bool
    message: str


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: str  # "pass" | "fail"
    rules: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        """The failing rules' sentences; every rule's sentence when all pass."""
        failing = [r.message for r in self.rules if not r.passed]
        return failing or [r.message for r in self.rules]


def gate(m: CandidateMetrics, cfg: GateConfig, review: ReviewStatus | None = None) -> GateResult:
    known = {r.key for r in GATE_RULES}
    unknown = sorted(set(cfg.limits) - known)
    if unknown:
        raise UnknownGateKey(f"unknown gate key(s): {', '.join(unknown)}")
    seen = review or ReviewStatus(0, 0, 0, 0, 0, 0)
    rules = []
    for rule in GATE_RULES:
        if rule.active(cfg):
            limit = cfg.limits.get(rule.key, rule.default)
            passed, message = rule.judge(m, seen, limit, cfg.bound)
            rules.append(RuleResult(rule.key, passed, message))
    if not rules:
        return GateResult(
            "fail", (RuleResult("gate", False, "No gate rule is set: nothing can pass."),)
        )
    return GateResult("pass" if all(r.passed for r in rules) else "fail", tuple(rules))
