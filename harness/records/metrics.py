"""What a candidate is judged by: its metric values, token-distribution metrics and slices.
The values are keyed by the names `harness.analysis.metrics` declares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.records.pairs import Interval

MetricValue = Interval | float | int | None


@dataclass(frozen=True, slots=True, kw_only=True)
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
    # Set when the candidate's log-probs were top-k (a server): the KLD figures are lower
    # bounds (top k + one tail bucket), labelled so wherever they are shown.
    kld_top_k: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
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
    diverged: int = 0  # reference-free items whose meaning moved
    # items declaring tools or a response_format, and those whose candidate output breaks it
    structured: int = 0
    schema_invalid: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateMetrics:
    """One value per metric declared in `harness.analysis.metrics` (`m.weighted_accuracy`,
    `m["mean_kld"]`), the distribution metrics and the slices."""

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
        """A metric's value; None when it was not measured (or not given)."""
        return self.values.get(name)

    @classmethod
    def of(
        cls,
        distribution: DistributionMetrics | None = None,
        slices: tuple[SliceRow, ...] = (),
        **values: MetricValue,
    ) -> CandidateMetrics:
        """Values by name: `CandidateMetrics.of(regressions=2, ...)`."""
        return cls(values=values, distribution=distribution, slices=slices)
