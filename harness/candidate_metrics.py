"""Every number a candidate is judged by, declared once.

A `Metric` names a value under `metrics` in results.json, says how to compute it from the
paired items, its unit, and how the report's metrics table and summary.md show it; its
optional `GateRule` is the `[gate]` key that limits it: the direction of the limit, how the
config value is checked, and the sentence a verdict gives. The gate rules, the unknown-key
check of `[gate]`, the metrics table and summary.md's table are all generated from `METRICS`
and `REVIEW_RULES`: adding a metric and its gate key is one declaration here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any

from harness.errors import HarnessError
from harness.records import GateConfig, Interval, Outcome, PairedItem, StatsConfig
from harness.records.settings import GateLimit
from harness.review import ReviewStatus
from harness.stats import mcnemar_exact, paired_drop, quantile, weighted_share


class NothingScored(HarnessError):
    """Zero scored items: an error, never a pass."""


# Histogram bin edges for per-token KLD (nats): decades, so both the near-zero bulk and
# the tail stay readable.
KLD_EDGES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, math.inf)

MetricValue = Interval | float | int | None


@dataclass(frozen=True, slots=True)
class DistributionMetrics:
    """Over every token the baseline generated, teacher-forced for both models."""

    tokens: int
    mean_kld: float
    median_kld: float
    p90_kld: float
    p99_kld: float
    max_kld: float
    top1_agreement: float
    rms_delta_p: float
    ppl_ratio: float  # exp(mean NLL_cand - mean NLL_base) on the baseline's tokens
    histogram: tuple[int, ...]  # token counts per KLD_EDGES bin


@dataclass(frozen=True, slots=True)
class SliceRow:
    slice: str  # "all", "difficulty=hard", "tag=add"
    items: int
    scored: int
    accuracy: Interval | None
    regressions: int
    improvements: int
    weighted_regression_share: float
    regression_weight: float  # the summed weight of the slice's regressions
    mean_kld: float | None


@dataclass(frozen=True, slots=True)
class CandidateMetrics:
    """One value per declared metric (`m.weighted_accuracy`, `m["mean_kld"]`), the
    distribution summary and the slices."""

    values: Mapping[str, MetricValue]
    distribution: DistributionMetrics | None = None
    slices: tuple[SliceRow, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "values":
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> MetricValue:
        return self.values[name]

    @classmethod
    def of(
        cls, distribution: DistributionMetrics | None = None, slices: tuple[SliceRow, ...] = (),
        **values: MetricValue,
    ) -> CandidateMetrics:  # fmt: skip
        """Values by name (for tests and readers); undeclared names are refused, missing
        ones are None."""
        unknown = set(values) - set(METRIC_NAMES)
        if unknown:
            raise KeyError(f"undeclared metric(s): {', '.join(sorted(unknown))}")
        return cls({n: values.get(n) for n in METRIC_NAMES}, distribution, slices)


# --- what the compute functions see ------------------------------------------------------


class Measured:
    """The paired items of one candidate and what several metrics share, computed once."""

    def __init__(self, paired: Sequence[PairedItem], stats: StatsConfig) -> None:
        self.paired, self.stats = paired, stats

    @cached_property
    def scored(self) -> list[PairedItem]:
        return _scored(self.paired)

    @cached_property
    def hard(self) -> list[PairedItem]:
        return [p for p in self.paired if p.item.hard]

    @cached_property
    def regression_share(self) -> tuple[float, float, float]:
        return weighted_share(
            [p.outcome is Outcome.REGRESSION for p in self.scored],
            [p.item.weight for p in self.scored],
            self.stats.bootstrap_samples, self.stats.seed, self.stats.confidence,
        )  # fmt: skip

    @cached_property
    def distribution(self) -> DistributionMetrics | None:
        return distribution_summary(self.paired)

    def interval(self, paired: Sequence[PairedItem]) -> Interval | None:
        return _interval(paired, self.stats)

    def count(self, outcome: Outcome, paired: Sequence[PairedItem] | None = None) -> int:
        return sum(p.outcome is outcome for p in (self.paired if paired is None else paired))

    def dist(self, field: str) -> float | None:
        d = self.distribution
        return None if d is None else float(getattr(d, field))


# --- how the report shows a value --------------------------------------------------------


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} pts"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    ci: str | None = None  # "low to high", shown smaller (in parentheses)

    def plain(self) -> str:
        return self.text if self.ci is None else f"{self.text} ({self.ci})"


@dataclass(frozen=True, slots=True)
class Column:
    header: str  # in report.html's metrics table
    cell: Callable[[CandidateMetrics], Cell]
    summary_header: str | None = None  # also a column of summary.md's table, so headed


def _interval_columns(name: str, label: str, drop_header: str) -> tuple[Column, ...]:
    """Two columns of a paired interval: both accuracies, and the drop with its interval."""

    def accuracy(m: CandidateMetrics) -> Cell:
        v = m[name]
        if not isinstance(v, Interval):
            return Cell("n/a")
        return Cell(f"{pct(v.baseline)} → {pct(v.candidate)}")

    def drop(m: CandidateMetrics) -> Cell:
        v = m[name]
        if not isinstance(v, Interval):
            return Cell("n/a")
        return Cell(pts(v.drop), f"{pts(v.ci_low)} to {pts(v.ci_high)}")

    return (
        Column(f"{label} baseline → candidate", accuracy),
        Column(drop_header, drop, f"{label} drop (interval)"),
    )


def _column(header: str, name: str, fmt: Callable[[Any], str], summary: bool = False) -> Column:
    return Column(header, lambda m: Cell(fmt(m[name])), header if summary else None)


# --- gate rules ----------------------------------------------------------------------------


class Limit(Enum):
    """How a `[gate]` value is checked when the config is read."""

    FRACTION = "a finite number >= 0"  # shares, drops and distances
    COUNT = "an integer >= 0"
    FLAG = "true or false"


@dataclass(frozen=True, slots=True)
class GateRule:
    key: str  # the [gate] key
    direction: str  # "max": the value may not exceed the limit; "min": nor fall below it
    limit: Limit
    # (candidate metrics, review summary, limit, bound) -> (passed, the sentence)
    judge: Callable[[CandidateMetrics, ReviewStatus, Any, str], tuple[bool, str]]
    default: GateLimit | None = None  # the rule is off at this value

    def active(self, cfg: GateConfig) -> bool:
        value = cfg.limits.get(self.key, self.default)
        return value is not None and value is not False


def _pts(x: float) -> str:
    return f"{100 * x:.2f} pts"


def _drop_rule(name: str, label: str) -> Callable[..., tuple[bool, str]]:
    """Judged at the pessimistic end of the paired interval unless `bound = "point"`; a
    slice with nothing scored fails: an error is never a pass."""

    def judge(m: CandidateMetrics, _: ReviewStatus, limit: float, bound: str) -> tuple[bool, str]:
        value = m[name]
        if not isinstance(value, Interval):
            return False, (
                f"{label}: no item of this slice was scored; the limit {_pts(limit)} cannot be "
                "checked"
            )
        judged = value.ci_high if bound == "upper_ci" else value.drop
        ok = judged <= limit
        where = "the upper end of its interval" if bound == "upper_ci" else "the point estimate"
        return ok, (
            f"{label} dropped {_pts(value.drop)} "
            f"(interval {_pts(value.ci_low)} to {_pts(value.ci_high)}); judged at {where}, "
            f"{_pts(judged)} is {'within' if ok else 'over'} the limit of {_pts(limit)}"
        )

    return judge


def _point_rule(name: str, label: str, unit: str) -> Callable[..., tuple[bool, str]]:
    """A point value over every generated token (no interval); unmeasured fails."""

    def judge(m: CandidateMetrics, _: ReviewStatus, limit: float, bound: str) -> tuple[bool, str]:
        value, rule = m[name], GATES[name]
        if value is None:
            return False, (
                f"{label} was not measured ([generation] distribution is off); "
                f"the limit {limit:g} cannot be checked"
            )
        value = float(value) if isinstance(value, int | float) else math.nan
        ok = value <= limit if rule.direction == "max" else value >= limit
        word = "at most" if rule.direction == "max" else "at least"
        return ok, f"{label} is {value:.4g}{unit}; it must be {word} {limit:g}{unit}"

    return judge


def _hard_regressions(
    m: CandidateMetrics, _: ReviewStatus, limit: int, bound: str
) -> tuple[bool, str]:
    n = m.hard_regressions
    return n <= limit, (
        f"{n} hard item(s) regressed (baseline right, candidate wrong); the limit is {limit}"
    )


def _regression_share(
    m: CandidateMetrics, _: ReviewStatus, limit: float, bound: str
) -> tuple[bool, str]:
    share, high = m.weighted_regression_share, m.regression_share_ci_high
    judged = high if bound == "upper_ci" else share
    return judged <= limit, (
        f"Regressions carry {share:.2%} of the weight (interval "
        f"{m.regression_share_ci_low:.2%} to {high:.2%}); judged at "
        f"{judged:.2%} against the limit of {limit:.2%}"
    )


def _require_review(
    m: CandidateMetrics, r: ReviewStatus, limit: bool, bound: str
) -> tuple[bool, str]:
    return r.hard_regressions_unreviewed == 0, (
        f"{r.hard_regressions_unreviewed} hard regression(s) have no hand verdict yet "
        f"({r.reviewed} of {r.flagged} flagged items reviewed); review is required"
    )


def _confirmed(m: CandidateMetrics, r: ReviewStatus, limit: int, bound: str) -> tuple[bool, str]:
    return r.confirmed_regressions <= limit, (
        f"Reviewers confirmed {r.confirmed_regressions} regression(s); the limit is {limit}"
    )


# --- the declarations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # the key under `metrics` in results.json
    compute: Callable[[Measured], MetricValue]
    unit: str  # "interval" (a paired drop), "share", "count", "p", "similarity", "nats", "ratio"
    gate: GateRule | None = None
    columns: tuple[Column, ...] = ()


def _flips(m: CandidateMetrics) -> Cell:
    return Cell(f"{m.regressions} ({m.hard_regressions})")


METRICS: tuple[Metric, ...] = (
    Metric("weighted_accuracy", lambda x: x.interval(x.paired), "interval",
           GateRule("max_weighted_accuracy_drop", "max", Limit.FRACTION,
                    _drop_rule("weighted_accuracy", "Weighted accuracy")),
           _interval_columns("weighted_accuracy", "weighted acc.", "drop (interval)")),
    Metric("hard_accuracy", lambda x: x.interval(x.hard), "interval",
           GateRule("max_hard_accuracy_drop", "max", Limit.FRACTION,
                    _drop_rule("hard_accuracy", "Hard-item accuracy")),
           _interval_columns("hard_accuracy", "hard acc.", "hard drop (interval)")),
    Metric("regressions", lambda x: x.count(Outcome.REGRESSION), "count",
           columns=(Column("regressions (hard)", _flips, "regressions (hard)"),)),
    Metric("improvements", lambda x: x.count(Outcome.IMPROVEMENT), "count",
           columns=(_column("improvements", "improvements", str, summary=True),)),
    Metric("hard_regressions", lambda x: x.count(Outcome.REGRESSION, x.hard), "count",
           GateRule("max_hard_regressions", "max", Limit.COUNT, _hard_regressions)),
    Metric("mcnemar_p",
           lambda x: mcnemar_exact(x.count(Outcome.REGRESSION), x.count(Outcome.IMPROVEMENT)), "p",
           columns=(_column("McNemar p", "mcnemar_p", num, summary=True),)),
    Metric("weighted_regression_share", lambda x: x.regression_share[0], "share",
           GateRule("max_weighted_regression_share", "max", Limit.FRACTION, _regression_share),
           (_column("regression weight share", "weighted_regression_share", pct),)),
    Metric("regression_share_ci_low", lambda x: x.regression_share[1], "share"),
    Metric("regression_share_ci_high", lambda x: x.regression_share[2], "share"),
    Metric("identical_share",
           lambda x: sum(p.baseline.output == p.candidate.output for p in x.paired) / len(x.paired),
           "share", columns=(_column("identical outputs", "identical_share", pct),)),
    Metric("mean_similarity", lambda x: sum(p.similarity for p in x.paired) / len(x.paired),
           "similarity", columns=(_column("mean word similarity", "mean_similarity", num),)),
    Metric("items", lambda x: len(x.paired), "count"),
    Metric("scored", lambda x: len(x.scored), "count"),
    Metric("unscorable", lambda x: len(x.paired) - len(x.scored), "count"),
    Metric("mean_kld", lambda x: x.dist("mean_kld"), "nats",
           GateRule("max_mean_kld", "max", Limit.FRACTION,
                    _point_rule("mean_kld", "Mean per-token KLD", " nats")),
           (_column("mean KLD", "mean_kld", num),)),
    Metric("p99_kld", lambda x: x.dist("p99_kld"), "nats",
           GateRule("max_p99_kld", "max", Limit.FRACTION,
                    _point_rule("p99_kld", "99th-percentile per-token KLD", " nats")),
           (_column("p99 KLD", "p99_kld", num),)),
    Metric("top1_agreement", lambda x: x.dist("top1_agreement"), "share",
           GateRule("min_top1_agreement", "min", Limit.FRACTION,
                    _point_rule("top1_agreement", "Top-1 agreement", "")),
           (_column("top-1 agreement", "top1_agreement", pct),)),
    # exp(mean NLL_cand - mean NLL_base) over the baseline's own output tokens
    Metric("ppl_ratio", lambda x: x.dist("ppl_ratio"), "ratio",
           columns=(_column("perplexity ratio", "ppl_ratio", lambda v: num(v, 4)),)),
    # exp(mean over items of NLL_cand - NLL_base) on the references
    Metric("reference_ppl_ratio", lambda x: _reference_ppl_ratio(x.paired), "ratio"),
)  # fmt: skip

# The unscorable count closes the table, after the distribution columns.
TABLE_COLUMNS: tuple[Column, ...] = (
    *(c for m in METRICS for c in m.columns),
    _column("unscorable", "unscorable", str),
)
SUMMARY_COLUMNS = tuple(c for c in TABLE_COLUMNS if c.summary_header)

# Rules on hand-review verdicts (`harness review import`), after the metric rules.
REVIEW_RULES: tuple[GateRule, ...] = (
    GateRule("require_review", "max", Limit.FLAG, _require_review, default=False),
    GateRule("max_confirmed_regressions", "max", Limit.COUNT, _confirmed),
)
GATE_RULES: tuple[GateRule, ...] = (*(m.gate for m in METRICS if m.gate), *REVIEW_RULES)
GATES = {m.name: m.gate for m in METRICS if m.gate}
METRIC_NAMES = tuple(m.name for m in METRICS)
GATE_KEYS = (*(r.key for r in GATE_RULES), "bound")


def gate_table(cfg: GateConfig) -> dict[str, GateLimit | str | None]:
    """`[gate]` as resolved: every key, off ones at their default, then `bound`."""
    return {r.key: cfg.limits.get(r.key, r.default) for r in GATE_RULES} | {"bound": cfg.bound}


# --- computing ---------------------------------------------------------------------------


def _scored(paired: Sequence[PairedItem]) -> list[PairedItem]:
    return [p for p in paired if p.outcome is not Outcome.UNSCORABLE]


def _interval(paired: Sequence[PairedItem], stats: StatsConfig) -> Interval | None:
    scored = _scored(paired)
    return paired_drop(
        [p.baseline.score or 0.0 for p in scored],
        [p.candidate.score or 0.0 for p in scored],
        [p.item.weight for p in scored],
        stats.bootstrap_samples,
        stats.seed,
        stats.confidence,
    )


def _reference_ppl_ratio(paired: Sequence[PairedItem]) -> float | None:
    diffs = [
        p.candidate.reference_nll - p.baseline.reference_nll
        for p in paired
        if p.candidate.reference_nll is not None and p.baseline.reference_nll is not None
    ]
    return math.exp(sum(diffs) / len(diffs)) if diffs else None


def _mean_kld(paired: Sequence[PairedItem]) -> float | None:
    kld = [k for p in paired if p.tokens is not None for k in p.tokens.kld]
    return sum(kld) / len(kld) if kld else None


def distribution_summary(paired: Sequence[PairedItem]) -> DistributionMetrics | None:
    # Items without token stats (lm-eval samples) are outside the distribution metrics.
    stats = [p.tokens for p in paired if p.tokens is not None]
    kld = [k for s in stats for k in s.kld]
    if not kld:
        return None
    agree = [a for s in stats for a in s.top1_agree]
    dp = [d for s in stats for d in s.delta_p]
    nll_b = [x for s in stats for x in s.nll_base]
    nll_c = [x for s in stats for x in s.nll_cand]
    counts = [0] * (len(KLD_EDGES) - 1)
    for k in kld:
        counts[next(i for i in range(len(counts)) if k < KLD_EDGES[i + 1])] += 1
    return DistributionMetrics(
        tokens=len(kld),
        mean_kld=sum(kld) / len(kld),
        median_kld=quantile(kld, 0.5) or 0.0,
        p90_kld=quantile(kld, 0.9) or 0.0,
        p99_kld=quantile(kld, 0.99) or 0.0,
        max_kld=max(kld),
        top1_agreement=sum(agree) / len(agree),
        rms_delta_p=math.sqrt(sum(d * d for d in dp) / len(dp)),
        ppl_ratio=math.exp((sum(nll_c) - sum(nll_b)) / len(kld)),
        histogram=tuple(counts),
    )


def _slice(name: str, paired: Sequence[PairedItem], stats: StatsConfig) -> SliceRow:
    scored = _scored(paired)
    total = sum(p.item.weight for p in scored)
    regressed = sum(p.item.weight for p in scored if p.outcome is Outcome.REGRESSION)
    return SliceRow(
        slice=name,
        items=len(paired),
        scored=len(scored),
        accuracy=_interval(paired, stats),
        regressions=sum(p.outcome is Outcome.REGRESSION for p in paired),
        improvements=sum(p.outcome is Outcome.IMPROVEMENT for p in paired),
        weighted_regression_share=regressed / total if total else 0.0,
        regression_weight=regressed,
        mean_kld=_mean_kld(paired),
    )


def slice_keys(p: PairedItem) -> list[str]:
    return [f"difficulty={p.item.difficulty.value}"] + [f"tag={t}" for t in p.item.tags]


def slices(paired: Sequence[PairedItem], stats: StatsConfig) -> tuple[SliceRow, ...]:
    """ "all", then each difficulty, then each tag."""
    groups: dict[str, list[PairedItem]] = {}
    for p in paired:
        for key in slice_keys(p):
            groups.setdefault(key, []).append(p)
    order = sorted(groups, key=lambda k: (k.startswith("tag="), k))
    return (_slice("all", paired, stats), *(_slice(k, groups[k], stats) for k in order))


def summarize(paired: Sequence[PairedItem], stats: StatsConfig) -> CandidateMetrics:
    measured = Measured(paired, stats)
    if measured.interval(paired) is None:
        raise NothingScored("no item could be scored for both models")
    values = {m.name: m.compute(measured) for m in METRICS}
    return CandidateMetrics(values, measured.distribution, slices(paired, stats))
