"""Intervals and tests by betting (Waudby-Smith & Ramdas 2024, "Estimating means of bounded
random variables by betting"): what every gated interval of a fixed-size run rests on, and
the without-replacement sequence a sequential run over a finite pool stops on.

Why betting and not the bootstrap: a percentile bootstrap has zero width when no item is
discordant, so "no flip seen in 100 items" would pass any limit; it also undercovers with
few discordant items or a few heavy weights (docs/metrics.md has the measured rates). A
betting test is valid at every n, for every distribution within the values' known range:
its error is bounded by Markov's (fixed n) or Ville's (any stopping time) inequality, not by
an asymptotic approximation.

**Fixed n, weighted items** (`interval`, `test`). The items are modelled as i.i.d. draws
(x_i, w_i) with x in [x_min, x_max] and 0 < w <= w_max; the estimand is the weighted mean
E[w x] / E[w]. For a threshold t, z_i = w_i (x_i - t) / w_max lies in [x_min - t, x_max - t]
and E[z] < 0 exactly when the weighted mean is below t, so the ratio needs no plug-in for
E[w]. To show the mean is below t, a gambler with capital 1 bets on each z in turn:
K = prod(1 - lambda_i z_i), lambda_i >= 0 chosen from z_1..z_{i-1}; while the mean is t or
more, E[K_n] <= 1. The bets follow `ORDERS` seeded orders of the items and their final
capitals are averaged (an average of e-values is an e-value), so no one order decides; the
mean is shown below t at level a when that average reaches 1/a (Markov). The mirror bet
shows it above t. A verdict tests at the limit itself; the interval's ends are where the
tests stop rejecting, found by bisection.

**A finite pool, without replacement** (`pool_tests`, `pool_interval`). A sequential run
draws a pool of N items in a uniformly random order; the estimand is the pool's own weighted
mean. Per item y = N w x / W (W: the pool's total weight of the rule's slice) has the pool
mean as its plain mean. If the pool mean were t, the next draw's expected value given the
past would be m_k = (N t - sum of the values drawn) / (N - k + 1) (Waudby-Smith & Ramdas §6);
the bets are on y_k - m_k, the capital is a nonnegative supermartingale under the null, and
by Ville's inequality it reaches 1/a at some look with chance at most a, however often the
run looks. Once the values left cannot reach t, the null is refuted outright, so by the
pool's end every limit but an exact tie is decided.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.records.pool import Pool, Range

Values = Sequence[float] | np.ndarray
Side = Literal["below", "above"]
# Seeded orders whose capitals are averaged, so that the verdict does not hang on the order
# the files list the items in. Power is the same with 1, 8 or 32 (measured: 18.6 / 19.7 /
# 19.0% passes at n = 1,000, psi = 0.085, D = 0, 45% weight 3); 8 keep a 10,000-item
# interval well under a second.
ORDERS = 8
# A bet stakes at most this share of what keeps the capital positive (Waudby-Smith & Ramdas
# use 1/2 or 3/4). Measured at D = 0 against a 2-pt limit, 45% weight 3, power at 0.75 / 0.9
# / 0.99: n = 300, psi = 0.005: 3 / 22 / 39%; psi = 0.02: 12 / 18 / 21%; but n = 1,000,
# psi = 0.02: 76 / 70 / 66%. 0.9 rules out a 2-pt drop with 243 flip-free items (0.75: 300;
# the exact binomial bound: 183) and never stakes everything on one item.
TRUNCATE = 0.9
BISECT = 40  # halvings of the range: an end within 2e-12 on a range of width 2


def orders(n: int, seed: int, count: int = ORDERS) -> np.ndarray:
    """`count` seeded permutations of n items (the first is the items' own order)."""
    rng = np.random.default_rng(seed)
    perms = [np.arange(n)] + [rng.permutation(n) for _ in range(count - 1)]
    return np.stack(perms)


def plug_in(v: np.ndarray, n: int, alpha: float, width: float) -> np.ndarray:
    """The fixed-n predictable plug-in bet sizes of Waudby-Smith & Ramdas (their interval's
    tuning, sqrt(2 log(1/a) / (n var))) for each value of v (the last axis is time), from
    the values before it only: a running variance seeded with one pseudo-item of variance
    width^2 / 4 (the prior only sizes the first bets)."""
    steps = v.shape[-1]
    t = np.arange(1, steps + 1, dtype=np.float64)
    mean_incl = np.cumsum(v, axis=-1) / (t + 1)
    sq = np.cumsum((v - mean_incl) ** 2, axis=-1)
    var = (0.25 * width**2 + np.concatenate([np.zeros((*v.shape[:-1], 1)), sq[..., :-1]], -1)) / t
    out: np.ndarray = np.sqrt(2 * math.log(1 / alpha) / (n * var))
    return out


@dataclass(frozen=True, slots=True)
class Prepared:
    """Items in their seeded orders, ready to bet on. The plug-in bet sizes come from the
    values v = w x / w_max, not from a threshold's z: with sizes that do not depend on the
    threshold, each bet's capital grows with the threshold (the truncation TRUNCATE / cap
    too), so the thresholds a test rejects form one half-line and the interval's ends are
    exactly where the tests at the limit change their answer."""

    v: np.ndarray  # (..., orders, n): w x / w_max; leading axes are independent runs
    scale: np.ndarray  # (..., orders, n): w / w_max
    range: Range
    n: int

    @classmethod
    def of(cls, x: Values, w: Values, rng: Range, seed: int, count: int = ORDERS) -> Prepared:
        """x and w: (n,) for one run, or (runs, n) for many (each in the same orders)."""
        xa, wa = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
        p = orders(xa.shape[-1], seed, count)
        scale = wa[..., p] / wa.max(axis=-1)[..., None, None]
        return cls(scale * xa[..., p], scale, rng, xa.shape[-1])

    def log_evalue(self, t: np.ndarray, side: Side, alpha: float) -> np.ndarray:
        """Log of the averaged e-value against "mean >= t" (side "below") or "mean <= t"
        ("above"), for each threshold in t: shape (thresholds, ...runs)."""
        lam = plug_in(self.v, self.n, alpha, self.range.high - self.range.low)
        tt = np.asarray(t, dtype=np.float64).reshape((-1,) + (1,) * self.v.ndim)
        z = self.v[None] - tt * self.scale[None]  # w (x - t) / w_max: below t when < 0
        if side == "above":
            z, cap = -z, np.maximum(tt - self.range.low, 1e-12)
        else:
            cap = np.maximum(self.range.high - tt, 1e-12)
        logs = np.sum(np.log1p(-np.minimum(lam[None], TRUNCATE / cap) * z), axis=-1)
        top = logs.max(axis=-1)
        mean: np.ndarray = top + np.log(np.mean(np.exp(logs - top[..., None]), axis=-1))
        return mean

    def rejects(self, t: float | np.ndarray, side: Side, alpha: float) -> np.ndarray:
        ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out: np.ndarray = self.log_evalue(ts, side, alpha) >= math.log(1 / alpha)
        return out


def interval(
    x: Values, w: Values, confidence: float, rng: Range, seed: int, count: int = ORDERS
) -> tuple[float, float] | None:
    """The two-sided betting interval for the weighted mean at `confidence` (each end one-
    sided at (1 - confidence) / 2), over `count` seeded orders; None without items."""
    if not len(x):
        return None
    p = Prepared.of(x, w, rng, seed, count)
    alpha = (1 - confidence) / 2
    return bisect(lambda t, s: p.rejects(t, s, alpha), rng)


def bisect(rejects: Callable[[np.ndarray, Side], np.ndarray], rng: Range) -> tuple[float, float]:
    """The interval's ends: where the "below" test starts rejecting (it rejects every
    threshold above a rejected one) and where the "above" test stops (every threshold below
    a rejected one); each end is the last threshold found on the rejected side, so a limit
    beyond an end is rejected by the test at the limit itself."""

    def edge(side: Side, rejected_high: bool) -> float:
        a, b = rng.low, rng.high
        ends = rejects(np.array([a, b]), side)
        if rejected_high and not ends[1]:
            return b  # nothing in range is ruled out on this side
        if not rejected_high and not ends[0]:
            return a
        if rejected_high and ends[0]:
            return a
        if not rejected_high and ends[1]:
            return b
        for _ in range(BISECT):
            mid = (a + b) / 2
            hit = bool(rejects(np.array([mid]), side)[0])
            if hit == rejected_high:
                b = mid
            else:
                a = mid
        return b if rejected_high else a

    return edge("above", False), edge("below", True)


# --- a finite pool, drawn without replacement --------------------------------------------


def pool_values(pool: Pool, x: Values, w: Values) -> np.ndarray:
    """y = N w x / W: the pool's weighted mean is their plain mean over the pool."""
    return pool.size * np.asarray(w, np.float64) * np.asarray(x, np.float64) / pool.total_weight


def _pool_log_capital(
    y: np.ndarray, t: np.ndarray, pool: Pool, side: Side, alpha: float
) -> np.ndarray:
    """Per threshold (rows of t), the running log capital of the without-replacement bet
    against "pool mean >= t" (side "below") or "<= t" ("above") after each value of y;
    +inf once the values left cannot reach t."""
    n, size = len(y), pool.size
    k = np.arange(1, n + 1, dtype=np.float64)
    drawn_before = np.concatenate([[0.0], np.cumsum(y)[:-1]])
    left = size - k + 1
    tt = t[:, None] * pool.size  # the pool's total under the null, in units of y
    m = (tt - drawn_before[None]) / left[None]  # the next value's mean under the null
    # the bets: plug-in variance of y around its running mean (Waudby-Smith & Ramdas's CS
    # tuning, lambda ~ sqrt(2 log(1/a) / (var t log(1 + t))))
    span = pool.y_high - pool.y_low
    mean_incl = np.cumsum(y) / (k + 1)
    sq = np.cumsum((y - mean_incl) ** 2)
    var = (0.25 * span**2 + np.concatenate([[0.0], sq[:-1]])) / k
    lam = np.sqrt(2 * math.log(1 / alpha) / (var * k * np.log1p(k)))[None]
    if side == "below":
        d = y[None] - m  # the bet wins when values fall below their null mean
        room = pool.y_high - m
        impossible = m > pool.y_high + 1e-12
    else:
        d = m - y[None]
        room = m - pool.y_low
        impossible = m < pool.y_low - 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = np.log1p(-np.minimum(lam, TRUNCATE / np.maximum(room, 1e-12)) * d)
    return np.cumsum(np.where(impossible, np.inf, steps), axis=-1)


def pool_tests(x: Values, w: Values, pool: Pool, limit: float, alpha: float) -> tuple[bool, bool]:
    """On a prefix of the pool in its random order: (shown below `limit` at some look so far,
    shown above it), each one-sided at alpha, valid however often it is looked at."""
    y = pool_values(pool, x, w)
    if not len(y):
        return False, False
    t = np.array([limit])
    bar = math.log(1 / alpha)
    below = bool((_pool_log_capital(y, t, pool, "below", alpha) >= bar).any())
    above = bool((_pool_log_capital(y, t, pool, "above", alpha) >= bar).any())
    return below, above


def pool_interval(x: Values, w: Values, pool: Pool, confidence: float) -> tuple[float, float]:
    """The confidence sequence for the pool's weighted mean after the prefix (x, w): the
    thresholds neither bet has refuted at any look so far."""
    y = pool_values(pool, x, w)
    if not len(y):
        return pool.range.low, pool.range.high
    if len(y) == pool.size:
        # the whole pool has been run: its weighted mean is known, not estimated
        xa, wa = np.asarray(x, np.float64), np.asarray(w, np.float64)
        point = float(wa @ xa / wa.sum())
        return point, point
    alpha = (1 - confidence) / 2
    bar = math.log(1 / alpha)

    def rejects(t: np.ndarray, side: Side) -> np.ndarray:
        caps = _pool_log_capital(y, t, pool, side, alpha)
        return np.asarray((caps >= bar).any(axis=-1))

    return bisect(rejects, pool.range)
