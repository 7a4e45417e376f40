"""Summarize one candidate's paired items: the numbers the gate, the report and
results.json share (definitions in `metrics.py`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.compare import Outcome, PairedItem
from harness.config import StatsConfig
from harness.metrics import Interval, mcnemar_exact, paired_drop, weighted_share


class NothingScored(Exception):
    """Zero scored items: an error, never a pass."""


@dataclass(frozen=True, slots=True)
class SliceRow:
    slice: str  # "all", "difficulty=hard", "tag=add"
    items: int
    scored: int
    accuracy: Interval | None
    regressions: int
    improvements: int
    weighted_regression_share: float


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
    # Token-level distribution metrics come with the teacher-forced pass; None until then.
    mean_kld: float | None
    p99_kld: float | None
    top1_agreement: float | None
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
    )


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
        mean_kld=None,
        p99_kld=None,
        top1_agreement=None,
        slices=(
            _slice("all", paired, stats),
            *(_slice(k, groups[k], stats) for k in sorted(groups, key=order)),
        ),
    )
