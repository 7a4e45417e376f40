"""The release gate: `gate(metrics, config, review, paired) -> GateResult`, with a sentence
and a verdict per rule: `pass`, `fail` or `undecided`.

The rules are the `GateRule`s declared in `harness.analysis.metrics` (in declaration
order). A rule on a paired interval passes when the interval's pessimistic end is below its
limit (a gate must be convinced, not merely unsurprised), fails when even the optimistic end
is above it (the loss is shown), and is undecided in between, a tie at the limit included;
with `bound = "point"` the point estimate alone decides. A rule that cannot be evaluated (no
hard item scored) fails: an error is never a pass. A candidate passes when every rule passes,
fails when any fails, and is undecided otherwise; requiring every rule (and every gated
candidate) to pass is an intersection-union test, so the error of a wrong pass stays at
each interval's one-sided level without a correction (docs/metrics.md).

Every rule on an interval also says what the run could resolve (`Evidence`): the interval's
half-width, the smallest limit it would pass, and the items that would decide it: of the
same mix for a fixed-size run (`harness.analysis.evidence.items_needed`, with the range the
run's own uncertainty spans), of the pool for a sequential one (`sequence_needed`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from harness.analysis.evidence import items_needed, sequence_needed
from harness.analysis.gate_rules import GateRule
from harness.analysis.metrics import GATE_RULES
from harness.analysis.scorers import reference_free
from harness.records import CandidateMetrics, EvalItem, GateSettings, PairedItem
from harness.records.errors import HarnessError
from harness.records.gate import Evidence, RuleResult
from harness.records.pool import Pool
from harness.records.review import ReviewStatus
from harness.records.settings import GateVerdict


class UnknownGateKey(HarnessError):
    """A limit for a key no rule declares."""


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
    "structured": "no item declares tools or a response_format",
    "distribution": "[generation] distribution is off",
}


def check_computable(
    cfg: GateSettings, items: Sequence[EvalItem], distribution: bool, lm_eval: bool
) -> None:
    """Every active rule can be computed on `items` (lm-eval tasks count as scored items)."""
    scored = [i for i in items if not reference_free(i)]
    have = {
        "reference": bool(scored) or lm_eval,
        "hard": any(i.hard for i in scored) or lm_eval,
        "free": len(scored) < len(items),
        "structured": any(i.tools or i.response_format is not None for i in items),
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
    cfg: GateSettings,
    review: ReviewStatus | None = None,
    paired: Sequence[PairedItem] = (),
    confidence: float = 0.95,
    pools: Mapping[str, Pool] | None = None,
    seed: int = 0,
    partial: str | None = None,
) -> GateResult:
    """The gate's verdict on one candidate; `paired` (its paired items) and the interval's
    `confidence` size the evidence of the rules on intervals; `pools`, a sequential run's
    slices of its pool, make that evidence the sequence's. `partial` (a run on part of its
    eval set, said in a sentence) is a rule that is never met: such a run fails where a rule
    fails (its items are a uniform draw of the pool, so its intervals hold) and is
    undecided otherwise, never a pass."""
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
                _evidence(rule, m, paired, float(limit), confidence, pools or {}, seed)
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
    if partial is not None:
        rules.append(RuleResult(rule="complete", verdict="undecided", message=partial))
    return GateResult(combine([r.verdict for r in rules]), tuple(rules))


def _evidence(
    rule: GateRule,
    m: CandidateMetrics,
    paired: Sequence[PairedItem],
    limit: float,
    confidence: float,
    pools: Mapping[str, Pool],
    seed: int,
) -> Evidence | None:
    if rule.interval is None or rule.per_item is None or not paired:
        return None
    ends = rule.interval(m)
    if ends is None:
        return None
    low, high = ends
    x, w = rule.per_item(paired)
    said = Evidence(
        limit=limit,
        resolution=(high - low) / 2,
        provable=high,
        items=len(paired),
        items_needed=None,
    )
    if rule.key in pools:
        pool = pools[rule.key]
        more = sequence_needed(x, w, pool, limit, confidence, seed)
        # the rule reads a slice of the pool: the pool items that hold that many of them
        scaled = None if more is None or not x else math.ceil(more * len(paired) / len(x))
        return replace(said, items_needed=scaled, sequential=True)
    need = items_needed(x, w, limit, confidence, rule.range)
    if need is None or not x:
        return said
    # The rule reads a slice (the scored items, the hard ones): the eval set of the same
    # mix that holds that many of them.
    share = len(paired) / len(x)
    return replace(
        said,
        items_needed=math.ceil(need.items * share),
        needed_low=math.ceil(need.low * share),
        needed_high=None if need.high is None else math.ceil(need.high * share),
    )
