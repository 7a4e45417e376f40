"""Every number a candidate is judged by, declared once.

A `Metric` names a value under `metrics` in results.json, says how to compute it from the
paired items, its unit, and the columns that show it in the report's metrics table and
summary.md's (`Shown`: a header and a format `harness.render.formats` names); its optional
`GateRule` is the `[gate]` key that limits it: the direction of the limit, how the config
value is checked, and the sentence a verdict gives. The gate rules, the unknown-key
check of `[gate]`, and (in render) the metrics table and summary.md's table are generated
from `METRICS` and `REVIEW_RULES`: adding a metric and its gate key is one declaration here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from harness.analysis import toolcalls
from harness.analysis.gate_rules import (
    GateRule,
    Limit,
    confirmed_rule,
    drop_gate,
    hard_regressions_rule,
    point_gate,
    require_review_rule,
    share_ends,
    share_rule,
)
from harness.analysis.scorers import reference_free
from harness.analysis.stats import mcnemar_exact, paired_drop, quantile, weighted_share
from harness.records import (
    CandidateMetrics,
    CompareConfig,
    DistributionMetrics,
    GateSettings,
    Interval,
    MetricValue,
    Outcome,
    PairedItem,
    SliceRow,
    SliceSettings,
    StatsSettings,
)
from harness.records.codec import to_json
from harness.records.errors import HarnessError
from harness.records.pool import SHARE
from harness.records.registry import Registry
from harness.records.schema import Key, keys_of
from harness.records.settings import GateLimit


class NothingScored(HarnessError):
    """Zero scored items: an error, never a pass."""


# Histogram bin edges for per-token KLD (nats): decades, so both the near-zero bulk and
# the tail stay readable.
# The outcomes of a reference-free item judged by meaning.
MEANING = (Outcome.IDENTICAL, Outcome.EQUIVALENT, Outcome.DIVERGED)
KLD_EDGES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, math.inf)


# --- what the compute functions see ------------------------------------------------------


class MetricInputs:
    """The paired items of one candidate and what several metrics share, computed once."""

    def __init__(self, paired: Sequence[PairedItem], stats: StatsSettings) -> None:
        self.paired, self.stats = paired, stats

    @cached_property
    def scored(self) -> list[PairedItem]:
        return _scored(self.paired)

    @cached_property
    def hard(self) -> list[PairedItem]:
        return [p for p in self.paired if p.item.hard]

    @cached_property
    def free(self) -> list[PairedItem]:
        """Reference-free items that were judged (an unmeasured similarity is unscorable)."""
        return [p for p in self.paired if reference_free(p.item) and p.outcome in MEANING]

    def share(self, outcome: Outcome) -> float | None:
        """Weighted share of the judged reference-free items with `outcome`; None without any."""
        total = sum(p.item.weight for p in self.free)
        chosen = sum(p.item.weight for p in self.free if p.outcome is outcome)
        return chosen / total if self.free else None

    def _share(self, outcome: Outcome, items: Sequence[PairedItem]) -> tuple[float, ...]:
        """(weighted share of `items` with `outcome`, its interval's low and high ends)."""
        share = weighted_share(
            [p.outcome is outcome for p in items], [p.item.weight for p in items], self.stats
        )
        return share if share is not None else (0.0, 0.0, 0.0)

    @cached_property
    def structured(self) -> list[PairedItem]:
        """Items declaring tools or a response_format (their outputs are checked)."""
        return _structured(self.paired)

    @cached_property
    def schema_invalid_share(self) -> tuple[float, ...]:
        """(weighted share of structured items whose candidate output breaks its declaration,
        its interval's low and high ends)."""
        items = self.structured
        share = weighted_share(
            [p.candidate.broken is not None for p in items],
            [p.item.weight for p in items],
            self.stats,
        )
        return share if share is not None else (0.0, 0.0, 0.0)

    @cached_property
    def diverged_share(self) -> tuple[float, ...]:
        return self._share(Outcome.DIVERGED, self.free)

    @cached_property
    def regression_share(self) -> tuple[float, ...]:
        return self._share(Outcome.REGRESSION, self.scored)

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


# --- the declarations ------------------------------------------------------------------------


# How a metric's value reads: a paired drop with its interval, a share, a count, a p-value...
Unit = Literal["interval", "share", "count", "p", "similarity", "nats", "ratio"]


@dataclass(frozen=True, slots=True)
class Shown:
    """A column of the report's metrics table showing a metric: its header, how its cell reads
    (a format `harness.render.formats.FORMATS` names: "pct", "num", "count", "kld"...), and
    its header in summary.md's table, if it is one of those columns too."""

    header: str
    format: str
    summary: str | None = None


def interval_shown(label: str, drop_header: str) -> tuple[Shown, ...]:
    """A paired interval's two columns: both accuracies, and the drop with its interval."""
    return (
        Shown(f"{label} baseline → candidate", "accuracies"),
        Shown(drop_header, "drop", f"{label} drop (interval)"),
    )


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # the key under `metrics` in results.json
    compute: Callable[[MetricInputs], MetricValue]
    unit: Unit
    gate: GateRule | None = None
    shown: tuple[Shown, ...] = ()  # its columns in the report's tables


def _structured(paired: Sequence[PairedItem]) -> list[PairedItem]:
    return [p for p in paired if toolcalls.structured(p.item)]


def _broken_share(side: str) -> Callable[[MetricInputs], MetricValue]:
    """The weighted share of structured items whose `side` output breaks its declaration."""

    def compute(x: MetricInputs) -> MetricValue:
        items = x.structured
        if not items:
            return None
        total = sum(p.item.weight for p in items)
        return sum(p.item.weight for p in items if getattr(p, side).broken) / total

    return compute


def _unparsed(side: str) -> Callable[[MetricInputs], MetricValue]:
    def compute(x: MetricInputs) -> MetricValue:
        if not x.structured:
            return None
        return sum(toolcalls.unparsed(getattr(p, side).broken) for p in x.structured)

    return compute


def _calls_changed(x: MetricInputs) -> MetricValue:
    if not any(p.item.tools for p in x.paired):
        return None
    return sum(p.answer_kind == "tool" and p.answer_change is not None for p in x.paired)


Compute = Callable[[MetricInputs], MetricValue]


def _scored_only(fn: Compute) -> Compute:
    """Flips and their statistics exist only over reference-scored items: None ("n/a") for a
    set that has none, never a reassuring 0."""
    return lambda x: fn(x) if x.scored else None


def _flagged(
    outcome: Outcome, subset: Callable[[Sequence[PairedItem]], list[PairedItem]]
) -> Callable[[Sequence[PairedItem]], tuple[list[float], list[float]]]:
    """A share rule's per-item values over `subset` of the paired items: 1 where the item's
    outcome is `outcome`, else 0, with the items' weights."""

    def per_item(paired: Sequence[PairedItem]) -> tuple[list[float], list[float]]:
        items = subset(paired)
        return [float(p.outcome is outcome) for p in items], [p.item.weight for p in items]

    return per_item


def _free_count(outcome: Outcome) -> Callable[[MetricInputs], MetricValue]:
    """How many reference-free items were judged `outcome`."""
    return lambda x: sum(p.outcome is outcome for p in x.free)


BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric(
        "weighted_accuracy",
        lambda x: x.interval(x.paired),
        "interval",
        drop_gate(
            "max_weighted_accuracy_drop",
            "weighted_accuracy",
            "Weighted accuracy",
            doc="fails when the weighted accuracy drop exceeds it (0.01 = 1 point)",
            per_item=lambda paired: _differences(_scored(paired)),
        ),
        interval_shown("weighted acc.", "drop (interval)"),
    ),
    Metric(
        "hard_accuracy",
        lambda x: x.interval(x.hard),
        "interval",
        drop_gate(
            "max_hard_accuracy_drop",
            "hard_accuracy",
            "Hard-item accuracy",
            "hard",
            doc="fails when the accuracy drop on hard items exceeds it",
            per_item=lambda paired: _differences([p for p in _scored(paired) if p.item.hard]),
        ),
        interval_shown("hard acc.", "hard drop (interval)"),
    ),
    Metric(
        "regressions",
        _scored_only(lambda x: x.count(Outcome.REGRESSION)),
        "count",
        shown=(Shown("regressions (hard)", "flips", "regressions (hard)"),),
    ),
    Metric(
        "improvements",
        _scored_only(lambda x: x.count(Outcome.IMPROVEMENT)),
        "count",
        shown=(Shown("improvements", "count", "improvements"),),
    ),
    Metric(
        "hard_regressions",
        _scored_only(lambda x: x.count(Outcome.REGRESSION, x.hard)),
        "count",
        GateRule(
            "max_hard_regressions",
            "max",
            Limit.COUNT,
            hard_regressions_rule,
            needs="reference",
            doc="fails when more hard items than this flipped from right to wrong",
        ),
    ),
    Metric(
        "mcnemar_p",
        _scored_only(
            lambda x: mcnemar_exact(x.count(Outcome.REGRESSION), x.count(Outcome.IMPROVEMENT))
        ),
        "p",
        shown=(Shown("McNemar p", "num", "McNemar p"),),
    ),
    Metric(
        "weighted_regression_share",
        _scored_only(lambda x: x.regression_share[0]),
        "share",
        GateRule(
            "max_weighted_regression_share",
            "max",
            Limit.SHARE,
            share_rule(
                "weighted_regression_share",
                "regression_share",
                "Regressions carry a weighted share of",
                "No item was scored against a reference",
            ),
            needs="reference",
            doc="fails when regressions carry more than this share of the scored weight",
            interval=share_ends("regression_share"),
            range=SHARE,
            per_item=_flagged(Outcome.REGRESSION, lambda paired: _scored(paired)),
        ),
        (Shown("regression weight share", "pct"),),
    ),
    Metric("regression_share_ci_low", _scored_only(lambda x: x.regression_share[1]), "share"),
    Metric("regression_share_ci_high", _scored_only(lambda x: x.regression_share[2]), "share"),
    Metric(
        "identical_share",
        lambda x: sum(p.baseline.output == p.candidate.output for p in x.paired) / len(x.paired),
        "share",
        shown=(Shown("identical outputs", "pct"),),
    ),
    Metric(
        "mean_similarity",
        lambda x: sum(p.similarity for p in x.paired) / len(x.paired),
        "similarity",
        shown=(Shown("mean word similarity", "num"),),
    ),
    Metric("items", lambda x: len(x.paired), "count"),
    # Outputs that ran to max_new_tokens without a stop: their final answers are not compared.
    Metric("cut_off", lambda x: sum(p.candidate.cut_off for p in x.paired), "count"),
    Metric("baseline_cut_off", lambda x: sum(p.baseline.cut_off for p in x.paired), "count"),
    Metric("answer_changes", lambda x: sum(p.answer_change is not None for p in x.paired), "count"),
    Metric("scored", lambda x: len(x.scored), "count"),
    Metric("unscorable", lambda x: x.count(Outcome.UNSCORABLE), "count"),
    # Reference-free items, judged by meaning: never in accuracy, flips or McNemar.
    Metric(
        "reference_free",
        lambda x: len(x.free),
        "count",
        shown=(
            Shown(
                "reference-free: identical / equivalent / diverged",
                "meaning",
                "reference-free: identical / equivalent / diverged",
            ),
        ),
    ),
    *(Metric(f"free_{o.value}", _free_count(o), "count") for o in MEANING),
    Metric(
        "equivalent_share",
        lambda x: x.share(Outcome.EQUIVALENT),
        "share",
        shown=(Shown("reference-free equivalent", "pct"),),
    ),
    Metric(
        "diverged_share",
        lambda x: x.share(Outcome.DIVERGED),
        "share",
        GateRule(
            "max_diverged_share",
            "max",
            Limit.SHARE,
            share_rule(
                "diverged_share",
                "diverged_share",
                "Reference-free items diverged in meaning or answer: a weighted share of",
                "No reference-free item was judged",
            ),
            needs="free",
            doc="fails when more than this weighted share of reference-free items diverged "
            "(in meaning or final answer), judged on its interval",
            interval=share_ends("diverged_share"),
            range=SHARE,
            per_item=_flagged(Outcome.DIVERGED, lambda paired: _free(paired)),
        ),
        (Shown("reference-free diverged", "pct"),),
    ),
    Metric("structured", lambda x: len(x.structured), "count"),
    Metric("calls_changed", _calls_changed, "count"),
    Metric(
        "schema_invalid_share",
        _broken_share("candidate"),
        "share",
        GateRule(
            "max_schema_invalid_share",
            "max",
            Limit.SHARE,
            share_rule(
                "schema_invalid_share",
                "schema_invalid_share",
                "Outputs breaking their declared tools or response_format: a weighted share of",
                "No item declares tools or a response_format",
            ),
            needs="structured",
            doc="fails when more than this weighted share of the items that declare tools or "
            "a response_format get an output that breaks the declaration (a malformed call, an "
            "undeclared function, arguments or JSON outside the schema), judged on its interval",
            interval=share_ends("schema_invalid_share"),
            range=SHARE,
            per_item=lambda paired: (
                [float(p.candidate.broken is not None) for p in _structured(paired)],
                [p.item.weight for p in _structured(paired)],
            ),
        ),
        (Shown("schema-invalid outputs", "pct"),),
    ),
    Metric(
        "schema_invalid_share_ci_low",
        lambda x: x.schema_invalid_share[1] if x.structured else None,
        "share",
    ),
    Metric(
        "schema_invalid_share_ci_high",
        lambda x: x.schema_invalid_share[2] if x.structured else None,
        "share",
    ),
    Metric("baseline_schema_invalid_share", _broken_share("baseline"), "share"),
    # ...of which the output held nothing to check (no JSON value, a call that cannot be read)
    Metric("unparsed", _unparsed("candidate"), "count"),
    Metric("baseline_unparsed", _unparsed("baseline"), "count"),
    Metric("diverged_share_ci_low", lambda x: x.diverged_share[1] if x.free else None, "share"),
    Metric("diverged_share_ci_high", lambda x: x.diverged_share[2] if x.free else None, "share"),
    Metric(
        "mean_kld",
        lambda x: x.dist("mean_kld"),
        "nats",
        point_gate(
            "max_mean_kld",
            "mean_kld",
            "Mean per-token KLD",
            " nats",
            limit=Limit.NUMBER,
            doc="fails when the mean per-token KLD (nats) exceeds it",
        ),
        (Shown("mean KLD", "kld", "mean KLD"),),
    ),
    Metric(
        "p99_kld",
        lambda x: x.dist("p99_kld"),
        "nats",
        point_gate(
            "max_p99_kld",
            "p99_kld",
            "99th-percentile per-token KLD",
            " nats",
            limit=Limit.NUMBER,
            doc="fails when the 99th percentile of per-token KLD exceeds it",
        ),
        (Shown("p99 KLD", "kld"),),
    ),
    Metric(
        "top1_agreement",
        lambda x: x.dist("top1_agreement"),
        "share",
        point_gate(
            "min_top1_agreement",
            "top1_agreement",
            "Top-1 agreement",
            "",
            "min",
            doc="fails when the share of tokens whose top-1 token agrees falls below it",
        ),
        (Shown("top-1 agreement", "pct"),),
    ),
    # exp(mean NLL_cand - mean NLL_base) over the baseline's own output tokens
    Metric(
        "ppl_ratio",
        lambda x: x.dist("ppl_ratio"),
        "ratio",
        shown=(Shown("perplexity ratio", "num4"),),
    ),
    # exp(mean over items of NLL_cand - NLL_base) on the references
    Metric("reference_ppl_ratio", lambda x: _reference_ppl_ratio(x.paired), "ratio"),
)
# Every metric: the built-in ones, then those installed packages declare under the
# `harness.metrics` entry point (a `Metric`: its value lands in results.json, its gate rule
# is a `[gate]` key, the columns it declares join the report's tables). Loaded here, once,
# after `Metric` exists: a plug-in module imports it from this module.
METRIC_TABLE: Registry[Metric] = Registry(
    "metric",
    "harness.metrics",
    {m.name: m for m in BUILTIN_METRICS},
    accept=lambda m: isinstance(m, Metric),
    is_a="a harness.analysis.metrics.Metric",
)
METRICS: tuple[Metric, ...] = tuple(METRIC_TABLE.all())

# Rules on hand-review verdicts (`harness review import`), after the metric rules.
REVIEW_RULES: tuple[GateRule, ...] = (
    GateRule(
        "require_review",
        "max",
        Limit.FLAG,
        require_review_rule,
        default=False,
        doc="`true`: fails while a hard regression has no hand verdict",
    ),
    GateRule(
        "max_confirmed_regressions",
        "max",
        Limit.COUNT,
        confirmed_rule,
        needs="reference",
        doc="fails when reviewers marked more items as `regression` than this",
    ),
)
GATE_RULES: tuple[GateRule, ...] = (*(m.gate for m in METRICS if m.gate), *REVIEW_RULES)
METRIC_NAMES = tuple(m.name for m in METRICS)
# `[gate]` as declared: each rule's key, then `bound` (`GateSettings`'s own).
GATE_SETTINGS: tuple[Key, ...] = (*(r.setting() for r in GATE_RULES), *keys_of(GateSettings))


def gate_table(cfg: GateSettings) -> dict[str, GateLimit | str | None]:
    """`[gate]` as resolved: every key, off ones at their default, then `bound`."""
    return {r.key: cfg.limits.get(r.key, r.default) for r in GATE_RULES} | {"bound": cfg.bound}


def config_json(cfg: CompareConfig) -> dict[str, Any]:
    """The config as resolved: every table, every default filled in."""
    data: dict[str, Any] = to_json(cfg)
    data["gate"] = gate_table(cfg.gate)
    return data


# --- computing ---------------------------------------------------------------------------


def _scored(paired: Sequence[PairedItem]) -> list[PairedItem]:
    """Items with a score on both sides: reference-free items never are."""
    return [p for p in paired if p.baseline.score is not None and p.candidate.score is not None]


def _differences(paired: Sequence[PairedItem]) -> tuple[list[float], list[float]]:
    """Per scored item: baseline score minus candidate score, and the item's weight."""
    return (
        [(p.baseline.score or 0.0) - (p.candidate.score or 0.0) for p in paired],
        [p.item.weight for p in paired],
    )


def _interval(paired: Sequence[PairedItem], stats: StatsSettings) -> Interval | None:
    scored = _scored(paired)
    return paired_drop(
        [p.baseline.score or 0.0 for p in scored],
        [p.candidate.score or 0.0 for p in scored],
        [p.item.weight for p in scored],
        stats,
    )


def _reference_ppl_ratio(paired: Sequence[PairedItem]) -> float | None:
    diffs = [
        p.candidate.reference_nll - p.baseline.reference_nll
        for p in paired
        if p.candidate.reference_nll is not None and p.baseline.reference_nll is not None
    ]
    # A broken model's NLLs can be astronomically large (finite logits of 1e37 measured):
    # exp() of their mean overflows. Capped at e^709, the largest a float holds: such a
    # ratio fails any limit, and results.json stays valid JSON (no inf).
    return math.exp(min(sum(diffs) / len(diffs), MAX_EXP)) if diffs else None


MAX_EXP = 709.0


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
        kld_top_k=max((s.kld_top_k for s in stats if s.kld_top_k), default=None),
    )


def _slice(name: str, paired: Sequence[PairedItem], stats: StatsSettings) -> SliceRow:
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
        diverged=sum(p.outcome is Outcome.DIVERGED for p in paired),
        structured=len(_structured(paired)),
        schema_invalid=sum(p.candidate.broken is not None for p in _structured(paired)),
    )


def length_bucket(name: str, tokens: int, edges: Sequence[int]) -> str:
    """The slice of a length: `name=LOW-HIGH` (both inclusive), the last one `name=LOW+`."""
    low = 0
    for edge in edges:
        if tokens < edge:
            return f"{name}={low}-{edge - 1}"
        low = edge
    return f"{name}={low}+"


def slice_keys(p: PairedItem, lengths: SliceSettings | None = None) -> list[str]:
    """The slices an item falls in: its difficulty, reference-free or not, its prompt's and
    the baseline's output's length buckets (generated items of a run that kept prompt
    lengths), its tags."""
    free = ["kind=reference-free"] if reference_free(p.item) else []
    size = []
    if lengths is not None and p.baseline.prompt_tokens is not None:
        size = [
            length_bucket("prompt_tokens", p.baseline.prompt_tokens, lengths.prompt_tokens),
            length_bucket("output_tokens", len(p.baseline.output_ids), lengths.output_tokens),
        ]
    tags = [f"tag={t}" for t in p.item.tags]
    return [f"difficulty={p.item.difficulty.value}", *free, *size, *tags]


def _order(key: str) -> tuple[int, int, str]:
    """Difficulty and kind, then length buckets shortest first, then tags."""
    group, _, value = key.partition("=")
    rank = {"prompt_tokens": 1, "output_tokens": 2, "tag": 3}.get(group, 0)
    low = int(value.split("-")[0].rstrip("+")) if rank in (1, 2) else 0
    return rank, low, key


def slices(
    paired: Sequence[PairedItem], stats: StatsSettings, lengths: SliceSettings | None = None
) -> tuple[SliceRow, ...]:
    """ "all", then each difficulty, each length bucket, each tag."""
    groups: dict[str, list[PairedItem]] = {}
    for p in paired:
        for key in slice_keys(p, lengths):
            groups.setdefault(key, []).append(p)
    order = sorted(groups, key=_order)
    return (_slice("all", paired, stats), *(_slice(k, groups[k], stats) for k in order))


def summarize(
    paired: Sequence[PairedItem], stats: StatsSettings, lengths: SliceSettings | None = None
) -> CandidateMetrics:
    measured = MetricInputs(paired, stats)
    if measured.interval(paired) is None and not measured.free:
        raise NothingScored("no item could be scored or judged for both models")
    values = {m.name: m.compute(measured) for m in METRICS}
    return CandidateMetrics(
        values=values, distribution=measured.distribution, slices=slices(paired, stats, lengths)
    )


def _free(paired: Sequence[PairedItem]) -> list[PairedItem]:
    """The judged reference-free items (as `MetricInputs.free`)."""
    return [p for p in paired if reference_free(p.item) and p.outcome in MEANING]
