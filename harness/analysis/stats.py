"""Pure statistics over paired, scored items. Definitions shared with the report and tests:

- weighted accuracy `sum(w_i * s_i) / sum(w_i)` over scored items;
- drop = baseline minus candidate, with a paired betting interval (harness.analysis.betting);
- regressions (baseline right, candidate wrong) and improvements, "right" meaning score
  >= 0.5; McNemar's exact test on those discordant pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

from harness.analysis.betting import interval
from harness.records import Interval, StatsSettings
from harness.records.pool import DROP, SHARE, Range


def weighted_accuracy(scores: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Weighted mean of the scores; unscorable items (None) are left out of both sums.
    None when nothing could be scored: an empty slice is not a perfect (or a zero) slice."""
    pairs = [(s, w) for s, w in zip(scores, weights, strict=True) if s is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return sum(s * w for s, w in pairs) / total


def paired_drop(
    base: Sequence[float] | np.ndarray,
    cand: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray,
    stats: StatsSettings,
) -> Interval | None:
    """Weighted accuracy of both models, the drop, and its paired betting interval
    (harness.analysis.betting: valid at any n, weights and flip rate). None for an empty
    slice."""
    if not len(base):
        return None
    b, c, w = (np.asarray(x, dtype=np.float64) for x in (base, cand, weights))
    point_b, point_c = float(w @ b / w.sum()), float(w @ c / w.sum())
    low, high = _interval(b - c, w, DROP, stats)
    return Interval(point_b, point_c, point_b - point_c, low, high)


def weighted_share(
    flags: Sequence[bool], weights: Sequence[float], stats: StatsSettings
) -> tuple[float, float, float] | None:
    """Weighted share of flagged items (e.g. regressions), with its betting interval; None
    without items."""
    f, w = np.asarray(flags, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not len(f):
        return None
    low, high = _interval(f, w, SHARE, stats)
    return float(w @ f / w.sum()), low, high


def _interval(
    x: np.ndarray, w: np.ndarray, rng: Range, stats: StatsSettings
) -> tuple[float, float]:
    # callers return early on an empty slice; with no item nothing is ruled out
    return interval(x, w, stats.confidence, rng, stats.seed, stats.orders) or (rng.low, rng.high)


def mcnemar_exact(regressions: int, improvements: int) -> float:
    """Two-sided exact McNemar p: binomial test of the discordant pairs at p = 1/2 (scipy's
    binomtest, linear in the pairs). It tests whether the candidate changed answers at all
    in one direction more than the other, not whether the loss is within a limit: it is
    reported, never gated."""
    n = regressions + improvements
    if n == 0:
        return 1.0
    return float(binomtest(regressions, n, 0.5).pvalue)


def quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q)) if values else None
