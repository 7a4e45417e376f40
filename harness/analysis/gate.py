"""The release gate: `gate(metrics, config, review, paired) -> GateResult`, with a sentence
and a verdict per rule: `pass`, `fail` or `undecided`.

The rules are the `GateRule`s declared in `candidate_metrics` (in declaration order). A rule on
a paired interval passes when the interval's pessimistic end is within its limit (a gate must
be convinced, not merely unsurprised), fails when even the optimistic end is beyond it (the
loss is shown), and is undecided in between; with `bound = "point"` the point estimate alone
decides. A value exactly at its limit passes. A rule that cannot be evaluated (no hard item
scored) fails: an error is never a pass. A candidate passes when every rule passes, fails
when any fails, and is undecided otherwise.

Every rule on an interval also says what the run could resolve (`Evidence`): the interval's
half-width, the smallest limit it would pass, and the items of the same mix that would decide
it (`harness.analysis.evidence.items_needed`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.candidate_metrics import GATE_RULES
from harness.analysis.evidence import items_needed
from harness.analysis.gate_rules import GateRule
from harness.analysis.review import ReviewStatus
from harness.analysis.scorers import reference_free
from harness.records import CandidateMetrics, EvalItem, GateConfig, PairedItem
from harness.records.errors import HarnessError
from harness.records.settings import GateVerdict


class UnknownGateKey(HarnessError):
    """A limit for a key no rule declares."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the run can resolve for a rule on an interval."""

    limit: float  # the rule's limit, in the interval's unit
    resolution: float  # the interval's half-width now
    provable: float  # the smallest limit this run would pass: drops above it are ruled out
    items: int  # eval-set items behind the interval now
    items_needed: int | None  # items of the same mix that decide the rule (None: none can)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleResult:
    rule: str  # the [gate] key
    verdict: GateVerdict
    message: str
    evidence: Evidence | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: GateVerdict
    rules: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        """The sentences of the rules that did not pass; every rule's when all pass."""
        open_ = [r.message for r in self.rules if not r.passed]
        return open_ or [r.message for r in self.rules]


def combine(verdicts: Sequence[GateVerdict]) -> GateVerdict:
    """`fail` when any fails, `pass` when all pass, else `undecided`."""
    if "fail" in verdicts or not verdicts:
        return "fail"
    return "pass" if all(v == "pass" for v in verdicts) else "undecided"


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


def gate(
    m: CandidateMetrics,
    cfg: GateConfig,
    review: ReviewStatus | None = None,
    paired: Sequence[PairedItem] = (),
    confidence: float = 0.95,
) -> GateResult:
    """The gate's verdict on one candidate; `paired` (its paired items) and the interval's
    `confidence` size the evidence of the rules on intervals."""
    known = {r.key for r in GATE_RULES}
    unknown = sorted(set(cfg.limits) - known)
    if unknown:
        raise UnknownGateKey(f"unknown gate key(s): {', '.join(unknown)}")
    seen = review or ReviewStatus(0, 0, 0, 0, 0, 0)
    rules = []
    for rule in GATE_RULES:
        if rule.active(cfg):
            limit = cfg.limits.get(rule.key, rule.default)
            verdict, message = rule.judge(m, seen, limit, cfg.bound)
            evidence = (
                _evidence(rule, m, paired, float(limit), confidence)
                if isinstance(limit, int | float)
                else None
            )
            rules.append(
                RuleResult(rule=rule.key, verdict=verdict, message=message, evidence=evidence)
            )
    if not rules:
        none = RuleResult(
            rule="gate", verdict="fail", message="No gate rule is set: nothing can pass."
        )
        return GateResult("fail", (none,))
    return GateResult(combine([r.verdict for r in rules]), tuple(rules))


def _evidence(
    rule: GateRule,
    m: CandidateMetrics,
    paired: Sequence[PairedItem],
    limit: float,
    confidence: float,
) -> Evidence | None:
    if rule.interval is None or rule.per_item is None or not paired:
        return None
    ends = rule.interval(m)
    if ends is None:
        return None
    low, high = ends
    x, w = rule.per_item(paired)
    need = items_needed(x, w, limit, confidence)
    if need is not None and x:
        # The rule reads a slice (the scored items, the hard ones): the eval set of the same
        # mix that holds that many of them.
        need = math.ceil(need * len(paired) / len(x))
    return Evidence(
        limit=limit,
        resolution=(high - low) / 2,
        provable=high,
        items=len(paired),
        items_needed=need,
    )


def evidence_sentence(rule: RuleResult) -> str:
    """What the run resolves for a rule on an interval, and what deciding it would take:
    "this run resolves ±3.6 pts (203 items); deciding the 2.00-pt limit needs ≈ 1,668
    items of the same mix". Empty for other rules."""
    e = rule.evidence
    if e is None:
        return ""
    said = f"this run resolves ±{100 * e.resolution:.2f} pts ({e.items:,} items)"
    if rule.verdict == "pass":
        return f"{said} and rules out anything above {100 * e.provable:.2f} pts"
    if e.items_needed is None:
        return f"{said}; the estimate sits at the limit: no number of items decides it"
    if rule.verdict == "fail":
        return said
    deciding = f"deciding the {100 * e.limit:.2f}-pt limit needs ≈ {e.items_needed:,} items"
    return f"{said}; {deciding} of the same mix"
