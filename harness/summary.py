"""Summarize one candidate's paired items: the numbers the gate, the report and
results.json share (definitions in `metrics.py`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.compare import Outcome, PairedItem
from harness.config import StatsConfig
from harness.metrics import Interval, mcnemar_exact, paired_drop, quantile, weighted_share


class NothingScored(Exception):
    """Zero scored items: an error, never a pass."""


# Histogram bin edges for per-token KLD (nats): decades, so both the near-zero bulk and
# the tail stay readable.
KLD_EDGES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, math.inf)


@dataclass(frozen=True, slots=True)
class DistributionSummary:
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


def distribution_summary(paired: Sequence[PairedItem]) -> DistributionSummary | None:
    # Items without token stats (lm-eval samples) are outside the distribution metrics.
    stats = [p.tokens for p in paired if p.tokens is not None]
    if not stats:
        return None
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
    return DistributionSummary(
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
    weighted_accuracy: Interval
    hard_accuracy: Interval | None
    regressions: int
    improvements: int
    hard_regressions: int
    weighted_regression_share: float
    regression_share_ci_low: float
    regression_share_ci_high: float
    mcnemar_p: float
    identical_share: float
    mean_similarity: float
    items: int
    scored: int
    unscorable: int
    # Token-level distribution metrics (None when the teacher-forced pass is off).
    mean_kld: float | None
    p99_kld: float | None
    top1_agreement: float | None
    reference_ppl_ratio: float | None  # exp(mean over items of NLL_cand - NLL_base) on references
    distribution: DistributionSummary | None
    slices: tuple[SliceRow, ...]


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


def slice_keys(p: PairedItem) -> list[str]:
    return [f"difficulty={p.item.difficulty.value}"] + [f"tag={t}" for t in p.item.tags]


def summarize(paired: Sequence[PairedItem], stats: StatsConfig) -> CandidateMetrics:
    scored = _scored(paired)
    overall = _interval(paired, stats)
    if overall is None:
        raise NothingScored("no item could be scored for both models")
    hard = [p for p in paired if p.item.hard]
    share, low, high = weighted_share(
        [p.outcome is Outcome.REGRESSION for p in scored],
        [p.item.weight for p in scored],
        stats.bootstrap_samples,
        stats.seed,
        stats.confidence,
    )
    regressions = sum(p.outcome is Outcome.REGRESSION for p in paired)
    improvements = sum(p.outcome is Outcome.IMPROVEMENT for p in paired)
    groups: dict[str, list[PairedItem]] = {}
    for p in paired:
        for key in slice_keys(p):
            groups.setdefault(key, []).append(p)
    dist = distribution_summary(paired)
    order: Callable[[str], tuple[bool, str]] = lambda k: (k.startswith("tag="), k)  # noqa: E731
    return CandidateMetrics(
        weighted_accuracy=overall,
        hard_accuracy=_interval(hard, stats),
        regressions=regressions,
        improvements=improvements,
        hard_regressions=sum(p.outcome is Outcome.REGRESSION for p in hard),
        weighted_regression_share=share,
        regression_share_ci_low=low,
        regression_share_ci_high=high,
        mcnemar_p=mcnemar_exact(regressions, improvements),
        identical_share=sum(p.baseline.output == p.candidate.output for p in paired) / len(paired),
        mean_similarity=sum(p.similarity for p in paired) / len(paired),
        items=len(paired),
        scored=len(scored),
        unscorable=len(paired) - len(scored),
        mean_kld=None if dist is None else dist.mean_kld,
        p99_kld=None if dist is None else dist.p99_kld,
        top1_agreement=None if dist is None else dist.top1_agreement,
        reference_ppl_ratio=_reference_ppl_ratio(paired),
        distribution=dist,
        slices=(
            _slice("all", paired, stats),
            *(_slice(k, groups[k], stats) for k in sorted(groups, key=order)),
        ),
    )
