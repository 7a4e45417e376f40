"""The release gate: `gate(metrics, config, review) -> GateResult`, with a sentence per rule.

The rules are the `GateRule`s declared in `candidate_metrics` (in declaration order); each
drop is judged at the pessimistic end of its paired interval by default (`bound =
"upper_ci"`): a gate must be convinced, not merely unsurprised. A value exactly at its limit
passes. A rule that cannot be evaluated (no hard item scored) fails: an error is never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.candidate_metrics import GATE_RULES
from harness.analysis.review import ReviewStatus
from harness.analysis.scorers import reference_free
from harness.records import CandidateMetrics, EvalItem, GateConfig
from harness.records.errors import HarnessError
from harness.records.settings import GateVerdict


class UnknownGateKey(HarnessError):
    """A limit for a key no rule declares."""


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str  # the [gate] key
    passed: bool
    message: str


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: GateVerdict
    rules: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        """The failing rules' sentences; every rule's sentence when all pass."""
        failing = [r.message for r in self.rules if not r.passed]
        return failing or [r.message for r in self.rules]


class GateNotComputable(HarnessError):
    """A configured rule that the eval set cannot feed: refused before any model runs, so
    nothing is generated only to be thrown away."""


_NEEDS = {
    "reference": "no item is scored against a reference (every item is reference-free)",
    "hard": "no hard item is scored against a reference",
    "free": "no item is reference-free",
    "distribution": "[generation] distribution is off",
}


def check_computable(
    cfg: GateConfig, items: Sequence[EvalItem], distribution: bool, lm_eval: bool
) -> None:
    """Every active rule can be computed on `items` (lm-eval tasks count as scored items)."""
    scored = [i for i in items if not reference_free(i)]
    have = {
        "reference": bool(scored) or lm_eval,
        "hard": any(i.hard for i in scored) or lm_eval,
        "free": len(scored) < len(items),
        "distribution": distribution,
    }
    for rule in GATE_RULES:
        if rule.active(cfg) and rule.needs is not None and not have[rule.needs]:
            raise GateNotComputable(
                f"gate rule {rule.key} cannot be computed on this eval set: {_NEEDS[rule.needs]}"
                "; remove the rule or add items it can judge"
            )


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
