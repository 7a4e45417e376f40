"""Pure statistics over paired, scored items. Definitions shared with the report and tests:

- weighted accuracy `sum(w_i * s_i) / sum(w_i)` over scored items;
- drop = baseline minus candidate, with a paired bootstrap interval (items resampled with
  their pairs kept, fixed seed);
- regressions (baseline right, candidate wrong) and improvements, "right" meaning score
  >= 0.5; McNemar's exact test on those discordant pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.records import Interval

BOOTSTRAP_CHUNK = 256


def weighted_accuracy(scores: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Weighted mean of the scores; unscorable items (None) are left out of both sums.
    None when nothing could be scored: an empty slice is not a perfect (or a zero) slice."""
    pairs = [(s, w) for s, w in zip(scores, weights, strict=True) if s is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return sum(s * w for s, w in pairs) / total


def paired_drop(
    base: Sequence[float],
    cand: Sequence[float],
    weights: Sequence[float],
    samples: int,
    seed: int,
    confidence: float = 0.95,
) -> Interval | None:
    """Weighted accuracy of both models, the drop, and its paired bootstrap interval
    (percentile method). None for an empty slice."""
    if not base:
        return None
    b, c, w = (np.asarray(x, dtype=np.float64) for x in (base, cand, weights))
    point_b, point_c = float(w @ b / w.sum()), float(w @ c / w.sum())
    drops = _bootstrap(
        lambda idx: (w[idx] * (b[idx] - c[idx])).sum(1) / w[idx].sum(1), len(b), samples, seed
    )
    alpha = 1 - confidence
    low, high = np.quantile(drops, [alpha / 2, 1 - alpha / 2])
    return Interval(point_b, point_c, point_b - point_c, float(low), float(high))


def weighted_share(
    flags: Sequence[bool],
    weights: Sequence[float],
    samples: int,
    seed: int,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Weighted share of flagged items (e.g. regressions), with its bootstrap interval."""
    f, w = np.asarray(flags, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not len(f):
        return 0.0, 0.0, 0.0
    shares = _bootstrap(lambda idx: (w[idx] * f[idx]).sum(1) / w[idx].sum(1), len(f), samples, seed)
    alpha = 1 - confidence
    low, high = np.quantile(shares, [alpha / 2, 1 - alpha / 2])
    return float(w @ f / w.sum()), float(low), float(high)


def _bootstrap(stat: object, n: int, samples: int, seed: int) -> np.ndarray:
    """`stat(idx)` over `samples` resamples of n items; chunked to keep memory flat."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, samples, BOOTSTRAP_CHUNK):
        idx = rng.integers(0, n, size=(min(BOOTSTRAP_CHUNK, samples - start), n))
        out.append(stat(idx))  # type: ignore[operator]
    return np.concatenate(out)


def mcnemar_exact(regressions: int, improvements: int) -> float:
    """Two-sided exact McNemar p: binomial test of the discordant pairs at p = 1/2."""
    n = regressions + improvements
    if n == 0:
        return 1.0
    k = min(regressions, improvements)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q)) if values else None
