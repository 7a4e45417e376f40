"""Sequential evaluation's decisions: after each round, each gated rule on an interval gets
an anytime-valid confidence sequence over the items run so far, drawn from the pool in its
seeded random order, and is decided once the sequence lies wholly below its limit (`pass`)
or wholly above it (`fail`).

The pool is a finite population and the sequence estimates the rule's weighted mean over it,
drawn without replacement (`harness.analysis.betting.pool_interval`; x: baseline minus
candidate score for a drop, 1 on a regression for the regression share). It holds at level
`confidence` at every round at once, so the run may look after every round and stop when it
likes; an interval recomputed each round would not (docs/metrics.md). By the pool's end the
pool's mean is known and every limit but an exact tie is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from harness.analysis.betting import pool_interval
from harness.analysis.gate_rules import GateRule
from harness.analysis.metrics import GATE_RULES
from harness.analysis.scorers import reference_free
from harness.records import (
    CandidateMetrics,
    EvalItem,
    GateSettings,
    Interval,
    PairedItem,
    StatsSettings,
)
from harness.records.pool import DROP, SHARE, Pool, Range
from harness.records.settings import GateVerdict


@dataclass(frozen=True, slots=True)
class SequentialRule:
    """A gated rule a sequential run can decide: which pool items it reads, the range of
    its per-item value."""

    key: str
    reads: Callable[[EvalItem], bool]
    range: Range


SEQUENTIAL_RULES: tuple[SequentialRule, ...] = (
    SequentialRule("max_weighted_accuracy_drop", lambda i: not reference_free(i), DROP),
    SequentialRule("max_hard_accuracy_drop", lambda i: not reference_free(i) and i.hard, DROP),
    SequentialRule("max_weighted_regression_share", lambda i: not reference_free(i), SHARE),
)


def active(gate: GateSettings) -> list[SequentialRule]:
    return [r for r in SEQUENTIAL_RULES if _rule(r.key).active(gate)]


def pools(pool: Sequence[EvalItem], gate: GateSettings) -> dict[str, Pool]:
    """Per rule a sequential run can decide, its slice of the pool: size, total and largest
    weight (the report shows each such interval as a sequence)."""
    out = {}
    for r in SEQUENTIAL_RULES:
        weights = [i.weight for i in pool if r.reads(i)]
        if weights:
            out[r.key] = Pool(
                size=len(weights), total_weight=sum(weights), max_weight=max(weights), range=r.range
            )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    rule: str
    verdict: GateVerdict  # "undecided" until the sequence leaves the limit behind
    low: float  # the confidence sequence now, in the rule's unit
    high: float
    items: int  # the rule's slice items it rests on


def decide(
    paired: Sequence[PairedItem],
    gate: GateSettings,
    pool_slices: dict[str, Pool],
    confidence: float,
    rules: Sequence[SequentialRule] | None = None,
) -> list[Decision]:
    """Each active rule's (or each of `rules`') confidence sequence over `paired` (a prefix
    of the pool, in pool order) and what it decides: the tests at the limit itself, which
    agree with the sequence's ends (`harness.analysis.betting`)."""
    out = []
    for r in active(gate) if rules is None else rules:
        pool = pool_slices.get(r.key)
        per_item = _rule(r.key).per_item
        if pool is None or per_item is None:
            continue
        x, w = per_item(paired)
        limit = gate.limits.get(r.key)
        limit = float(limit) if isinstance(limit, int | float) else float("inf")
        if not x:
            out.append(
                Decision(
                    rule=r.key, verdict="undecided", low=r.range.low, high=r.range.high, items=0
                )
            )
            continue
        lo, hi = pool_interval(x, w, pool, confidence)
        verdict: GateVerdict = "pass" if hi < limit else "fail" if lo > limit else "undecided"
        out.append(Decision(rule=r.key, verdict=verdict, low=lo, high=hi, items=len(x)))
    return out


def _rule(key: str) -> GateRule:
    return next(g for g in GATE_RULES if g.key == key)


# The metric each rule's interval is shown in: an Interval's ends, or two share metrics.
_SHOWN: dict[str, str | tuple[str, str]] = {
    "max_weighted_accuracy_drop": "weighted_accuracy",
    "max_hard_accuracy_drop": "hard_accuracy",
    "max_weighted_regression_share": ("regression_share_ci_low", "regression_share_ci_high"),
}


def sequence_intervals(
    m: CandidateMetrics,
    paired: Sequence[PairedItem],
    gate: GateSettings,
    pool_slices: dict[str, Pool],
    stats: StatsSettings,
) -> CandidateMetrics:
    """The metrics of a sequential run's candidate with the intervals the gate judges made
    the confidence sequences its run stopped on (a fixed-n interval after a data-dependent
    stop does not hold its level)."""
    values = dict(m.values)
    for d in decide(paired, gate, pool_slices, stats.confidence, SEQUENTIAL_RULES):
        shown = _SHOWN[d.rule]
        if isinstance(shown, tuple):
            if values.get(shown[0]) is not None:
                values[shown[0]], values[shown[1]] = max(d.low, 0.0), d.high
            continue
        interval = values.get(shown)
        if isinstance(interval, Interval):
            values[shown] = replace(interval, ci_low=d.low, ci_high=d.high)
    return replace(m, values=values)
