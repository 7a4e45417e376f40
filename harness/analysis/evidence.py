"""How much a run can decide: the items a fixed-size run needs, and what a sequential run's
sequence would need. Pure functions over per-item paired values; docs/metrics.md states the
formulas and the calibration suite (`make calibration`) measures the power they deliver.

Items needed (fixed n). A gated statistic is a weighted mean `D = sum(w x) / sum(w)` of
per-item values x (for a drop, x = baseline score - candidate score; for the regression
share, x = 1 on a regression). Its variance over n items is the sandwich form
`v / n` with `v = n sum(w^2 (x - D)^2) / sum(w)^2` (it keeps the link between weights and
flips that Kish's design effect drops: when heavy items flip more often, deff understates
it). The gate's betting interval is wider than a normal one: its half-width is about
sqrt(2 log(1/a) v / n) (Waudby-Smith & Ramdas), so deciding `D <= limit` at one-sided level
a with power 1 - b needs

    n = (sqrt(2 log(1/a)) + z(1 - b))^2 * v / (limit - D)^2

items, and never fewer than the bets need to leave the limit behind with no flip at all
(`floor`). The pilot is uncertain about both inputs: the figure is given with the range
spanned by its discordance psi (the share of items whose scores differ) at the ends of psi's exact
(Clopper-Pearson) interval, v scaled in proportion, and its drop at +-1.28 standard errors;
when that drop range reaches the limit, the range has no upper end (the pilot cannot tell
which side of the limit the drop is on). `make calibration` measures how often the range
holds the figure the truth would give.

A sequential run's undecided rule: the sequence is continued on the pool's remaining items,
drawn from the items run so far (with replacement), `SIMS` times; the figure is the 80th
percentile of the items at which it decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, norm

from harness.analysis.betting import TRUNCATE, pool_tests
from harness.records.pool import Pool, Range

Values = list[float] | np.ndarray
POWER = 0.8  # the power `items_needed` sizes for
SIMS = 200  # continuations of a sequence for what it would need


@dataclass(frozen=True, slots=True, kw_only=True)
class Needed:
    """Items that decide a rule: the figure and the range the pilot's uncertainty spans
    (`high` None: the pilot cannot tell which side of the limit the mean is on, so no
    number of items is ruled out as too few to matter)."""

    items: int
    low: int
    high: int | None


def sandwich(values: Values, weights: Values) -> float:
    """v = n sum(w^2 (x - D)^2) / sum(w)^2: n times the weighted mean's variance."""
    x, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    mean = float(w @ x / w.sum())
    return float(len(x) * np.sum(w**2 * (x - mean) ** 2) / w.sum() ** 2)


def floor(limit: float, mean: float, rng: Range, alpha: float) -> int:
    """The fewest items with which the bets can rule out `limit` at all: each item gains at
    most log(1 + TRUNCATE gap / room) (no flip, gap = |limit - mean|)."""
    gap = abs(limit - mean)
    room = rng.high - limit if mean < limit else limit - rng.low
    if room <= 0:
        return 1
    return math.ceil(math.log(1 / alpha) / math.log1p(TRUNCATE * gap / room))


# What the bets cost beyond their asymptotic width: with sqrt(2 log(1/a)) alone the figure
# delivered 73-77% power on the calibration grid (80% named); this much more delivers it
# (docs/metrics.md, `make calibration`'s "needed" table).
SLACK = 0.25
# How sure the range is: the pilot's drop at +-z(0.9) standard errors, its discordance at
# the ends of its exact interval at the run's confidence.
RANGE_Z = float(norm.ppf(0.9))


def _n(v: float, gap: float, alpha: float, power: float) -> float:
    z = math.sqrt(2 * math.log(1 / alpha)) + SLACK + norm.ppf(power)
    return z**2 * v / gap**2


def items_needed(
    values: Values,
    weights: Values,
    limit: float,
    confidence: float,
    rng: Range,
    power: float = POWER,
) -> Needed | None:
    """Items of the same mix that decide `weighted mean < limit` (either way) at the one-
    sided level (1 - confidence) / 2 of the interval's ends, with `power`. None when nothing
    can decide it: no item, or the observed mean sits exactly at the limit."""
    x, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not len(x) or w.sum() <= 0:
        return None
    mean = float(w @ x / w.sum())
    gap = limit - mean
    if gap == 0:
        return None
    alpha = (1 - confidence) / 2
    least = floor(limit, mean, rng, alpha)
    v = sandwich(x, w)
    n, k = len(x), int(np.count_nonzero(x))
    psi = k / n
    # psi's exact interval, at the run's confidence
    lo = float(beta.ppf(alpha, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - alpha, k + 1, n - k)) if k < n else 1.0
    # v in proportion to psi; with no flip seen, a flip's share of v is Kish's design
    # effect n sum(w^2) / sum(w)^2 (x^2 = 1 on a flip)
    per_flip = v / psi if psi > 0 else float(n * np.sum(w**2) / w.sum() ** 2)

    def at(p: float, g: float) -> int:
        return max(least, math.ceil(_n(per_flip * p, g, alpha, power) - 1e-9))

    point = max(least, math.ceil(_n(v, gap, alpha, power) - 1e-9))
    # the drop's own uncertainty: the gap at +-RANGE_Z standard errors (sqrt(v / n))
    se = math.sqrt(v / n) if v > 0 else math.sqrt(per_flip * hi / n)
    near, far = abs(gap) - RANGE_Z * se, abs(gap) + RANGE_Z * se
    high = None if near <= 0 else max(point, at(hi, near))
    return Needed(items=point, low=min(point, at(lo, far)), high=high)


def sequence_needed(
    values: Values,
    weights: Values,
    pool: Pool,
    limit: float,
    confidence: float,
    seed: int,
    sims: int = SIMS,
) -> int | None:
    """The items (of the rule's slice of the pool) by which a sequential run would decide,
    80th percentile over `sims` continuations of the items run so far; None when the
    continuations do not decide it before the pool's end."""
    x, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not len(x) or len(x) >= pool.size:
        return None
    alpha = (1 - confidence) / 2
    rng = np.random.default_rng(seed)
    left = pool.size - len(x)
    found = []
    for _ in range(sims):
        pick = rng.integers(0, len(x), size=left)
        px, pw = np.concatenate([x, x[pick]]), np.concatenate([w, w[pick]])
        found.append(_first_decided(px, pw, pool, limit, alpha, len(x)))
    decided = np.array([f for f in found if f is not None])
    if len(decided) < POWER * sims:
        return None
    return int(np.quantile(decided, POWER))


def _first_decided(
    x: np.ndarray, w: np.ndarray, pool: Pool, limit: float, alpha: float, start: int
) -> int | None:
    """The first prefix length (past `start`) at which the pool tests decide: by bisection
    on the prefix, since a decision once made stays made."""
    if not any(pool_tests(x, w, pool, limit, alpha)):
        return None
    a, b = start, len(x)
    while b - a > 1:
        mid = (a + b) // 2
        if any(pool_tests(x[:mid], w[:mid], pool, limit, alpha)):
            b = mid
        else:
            a = mid
    return b
