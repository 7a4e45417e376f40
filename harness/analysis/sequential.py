"""Sequential evaluation's decisions: after each round, each gated rule on an interval gets
an anytime-valid confidence sequence (`harness.analysis.evidence`) over the items run so far,
drawn from the pool in its stratified order, and is decided once the sequence lies wholly
within its limit (`pass`) or wholly beyond it (`fail`).

The sequence estimates the rule's weighted mean over the pool: per item y = w x / (the pool's
mean weight of the rule's slice), whose plain mean over the pool is the pool's weighted mean
(x: baseline minus candidate score for a drop, 1 on a regression for the regression share).
It holds at level `confidence` at every round at once, so the run may look after every round
and stop when it likes; an interval recomputed each round would not (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.analysis.candidate_metrics import GATE_RULES
from harness.analysis.evidence import Scale, confidence_sequence
from harness.analysis.gate_rules import GateRule
from harness.analysis.scorers import reference_free
from harness.records import (
    CandidateMetrics,
    EvalItem,
    GateConfig,
    Interval,
    PairedItem,
    StatsConfig,
)
from harness.records.settings import GateVerdict


@dataclass(frozen=True, slots=True)
class SequentialRule:
    """A gated rule a sequential run can decide: which pool items it reads, the range of
    its per-item value."""

    key: str
    reads: Callable[[EvalItem], bool]
    x_min: float
    x_max: float


SEQUENTIAL_RULES: tuple[SequentialRule, ...] = (
    SequentialRule("max_weighted_accuracy_drop", lambda i: not reference_free(i), -1.0, 1.0),
    SequentialRule("max_hard_accuracy_drop", lambda i: not reference_free(i) and i.hard, -1.0, 1.0),
    SequentialRule("max_weighted_regression_share", lambda i: not reference_free(i), 0.0, 1.0),
)
# Grid points of a confidence sequence: a resolution of about 0.1% of the value's range.
GRID = 1001


def active(gate: GateConfig) -> list[SequentialRule]:
    return [r for r in SEQUENTIAL_RULES if _rule(r.key).active(gate)]


def scales(pool: Sequence[EvalItem], gate: GateConfig) -> dict[str, Scale]:
    """Per rule, how its per-item values map into [0, 1] over this pool (every rule a
    sequential run can decide: the report shows each such interval as a sequence)."""
    out = {}
    for r in SEQUENTIAL_RULES:
        weights = [i.weight for i in pool if r.reads(i)]
        if weights:
            out[r.key] = Scale.of(weights, r.x_min, r.x_max)
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
    gate: GateConfig,
    pool_scales: dict[str, Scale],
    confidence: float,
    rules: Sequence[SequentialRule] | None = None,
) -> list[Decision]:
    """Each active rule's (or each of `rules`') confidence sequence over `paired` (a prefix
    of the pool, in pool order) and what it decides."""
    out = []
    for r in active(gate) if rules is None else rules:
        scale = pool_scales.get(r.key)
        per_item = _rule(r.key).per_item
        if scale is None or per_item is None:
            continue
        x, w = per_item(paired)
        limit = gate.limits.get(r.key)
        limit = float(limit) if isinstance(limit, int | float) else float("inf")
        if not x:
            out.append(
                Decision(rule=r.key, verdict="undecided", low=r.x_min, high=r.x_max, items=0)
            )
            continue
        values = scale.values(x, w)
        low, high = confidence_sequence(np.asarray(values), 1 - confidence, GRID)
        # the sequence's ends lie within a grid step beyond the last grid points it keeps
        step = (scale.high - scale.low) / (GRID - 1)
        lo = scale.back(float(low[-1])) - step
        hi = scale.back(float(high[-1])) + step
        verdict: GateVerdict = "pass" if hi <= limit else "fail" if lo > limit else "undecided"
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
    gate: GateConfig,
    pool_scales: dict[str, Scale],
    stats: StatsConfig,
) -> CandidateMetrics:
    """The metrics of a sequential run's candidate with the intervals the gate judges made
    the confidence sequences its run stopped on (a bootstrap interval after a data-dependent
    stop does not hold its level)."""
    values = dict(m.values)
    for d in decide(paired, gate, pool_scales, stats.confidence, SEQUENTIAL_RULES):
        shown = _SHOWN[d.rule]
        if isinstance(shown, tuple):
            if values.get(shown[0]) is not None:
                values[shown[0]], values[shown[1]] = max(d.low, 0.0), d.high
            continue
        interval = values.get(shown)
        if isinstance(interval, Interval):
            values[shown] = replace(interval, ci_low=d.low, ci_high=d.high)
    return replace(m, values=values)
