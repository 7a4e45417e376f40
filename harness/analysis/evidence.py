"""How much a run can decide: the items a fixed-size run needs, and the anytime-valid test a
sequential run stops on. Pure functions over per-item paired values; `docs/metrics.md`
states the formulas and what they assume.

Items needed (normal approximation, paired design). A gated statistic is a weighted mean
`D = sum(w x) / sum(w)` of per-item values x (for a drop, x = baseline score - candidate
score; for the regression share, x = 1 on a regression). Deciding `D <= limit` one-sided at
level a with power 1 - b needs

    n = (z(1 - a) + z(1 - b))^2 * (psi - D^2) / (limit - D)^2 * deff

items, where psi is the weighted mean of x^2 (for 0/1 scores, the discordance p10 + p01) and
deff = n sum(w^2) / sum(w)^2 is Kish's design effect of the weights. It assumes more items of
the same mix (difficulty, weights) and that the observed discordance and drop are the true
ones.

Anytime-valid test (Waudby-Smith & Ramdas 2024, "Estimating means of bounded random variables
by betting", predictable plug-in bets). Values rescaled into [0, 1]; to show the mean is
below a threshold t, a gambler starts with capital 1 and bets on each new value against t:
    K_n = prod_i (1 - lambda_i (x_i - t)),  lambda_i >= 0 chosen from x_1..x_{i-1} only.
While the true mean is t or more, K is a nonnegative supermartingale, so by Ville's inequality
the chance it ever reaches 1/a, however often it is looked at, is at most a. The mirror bet
shows the mean is above t. Intervals come from the same bets over a grid of thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

Values = Sequence[float] | np.ndarray
POWER = 0.8  # the power `items_needed` sizes for
# How far a bet may go: lambda is cut at this share of what keeps the capital positive
# (Waudby-Smith & Ramdas use 1/2 or 3/4; 1/2 loses little power and never stakes it all).
TRUNCATE = 0.5


def design_effect(weights: Values) -> float:
    """Kish's design effect n sum(w^2) / sum(w)^2: 1 for equal weights."""
    w = np.asarray(weights, dtype=np.float64)
    return float(len(w) * (w @ w) / w.sum() ** 2) if len(w) else 1.0


def items_needed(
    values: Values,
    weights: Values,
    limit: float,
    confidence: float,
    power: float = POWER,
) -> int | None:
    """Items of the same mix that decide `weighted mean <= limit` (either way) at the one-
    sided level (1 - confidence) / 2 of the interval's pessimistic end, with `power`. None
    when nothing can decide it: no item, or the observed mean sits exactly at the limit."""
    x, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not len(x) or w.sum() <= 0:
        return None
    mean = float(w @ x / w.sum())
    spread = float(w @ (x * x) / w.sum()) - mean**2
    gap = limit - mean
    if gap == 0:
        return None
    z = norm.ppf(1 - (1 - confidence) / 2) + norm.ppf(power)
    need = z**2 * max(spread, 0.0) / gap**2 * design_effect(w)
    return max(1, math.ceil(need - 1e-9))


@dataclass(frozen=True, slots=True)
class Bets:
    """The log capital of the two one-sided bets against threshold t after each value."""

    below: np.ndarray  # shows the mean < t when it reaches log(1/a)
    above: np.ndarray  # shows the mean > t


def _plug_in(x: np.ndarray, alpha: float) -> np.ndarray:
    """The predictable plug-in bet size for each value, from the values before it only
    (along the last axis)."""
    n = x.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    # the running variance estimate around the running means up to and including each value
    # (Waudby-Smith & Ramdas), shifted one step so that a bet never sees its own value
    means_incl = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    sq = np.cumsum((x - means_incl) ** 2, axis=-1)
    var = (0.25 + np.concatenate([np.zeros((*x.shape[:-1], 1)), sq[..., :-1]], -1)) / t
    return np.sqrt(2 * math.log(2 / alpha) / (var * t * np.log1p(t)))


def bets(x: np.ndarray, threshold: float | np.ndarray, alpha: float) -> Bets:
    """Both one-sided bets against `threshold` on values x in [0, 1] (the last axis is
    time; leading axes are independent sequences; an array of thresholds broadcasts)."""
    lam = _plug_in(x, alpha)
    below = np.minimum(lam, TRUNCATE / np.maximum(1 - threshold, 1e-12))
    above = np.minimum(lam, TRUNCATE / np.maximum(threshold, 1e-12))
    return Bets(
        below=np.cumsum(np.log1p(-below * (x - threshold)), axis=-1),
        above=np.cumsum(np.log1p(above * (x - threshold)), axis=-1),
    )


def shown(capital: np.ndarray, alpha: float) -> np.ndarray:
    """Whether each bet has shown its side by each time (its capital has reached 1/alpha at
    that time or before: once shown, it stays shown)."""
    won: np.ndarray = np.maximum.accumulate(capital >= math.log(1 / alpha), axis=-1)
    return won


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """Weighted per-item values as values in [0, 1] whose plain mean is the weighted mean:
    y = w x / (the pool's mean weight) has the pool's weighted mean as its mean, and lies in
    [low, high] = [x_min, x_max] * (the pool's largest weight) / (its mean weight); it is
    then mapped onto [0, 1]."""

    mean_weight: float
    low: float
    high: float

    @classmethod
    def of(cls, pool_weights: Values, x_min: float, x_max: float) -> Scale:
        w = np.asarray(pool_weights, dtype=np.float64)
        mean = float(w.mean())
        top = float(w.max()) / mean
        return cls(mean_weight=mean, low=x_min * top, high=x_max * top)

    def values(self, x: Values, w: Values) -> np.ndarray:
        y = np.asarray(w, dtype=np.float64) * np.asarray(x, dtype=np.float64) / self.mean_weight
        return np.clip((y - self.low) / (self.high - self.low), 0.0, 1.0)

    def threshold(self, limit: float) -> float:
        return (limit - self.low) / (self.high - self.low)

    def back(self, value: float) -> float:
        return self.low + value * (self.high - self.low)


def confidence_sequence(
    x: np.ndarray, alpha: float, grid: int = 2001
) -> tuple[np.ndarray, np.ndarray]:
    """The running (intersected) two-sided confidence sequence for the mean of values x in
    [0, 1], at level 1 - alpha (alpha / 2 a side), on a grid of thresholds: (low, high) after
    each value."""
    thresholds = np.linspace(0.0, 1.0, grid)[:, None]
    # a threshold is ruled out once either bet against it has won
    both = bets(x[None, :], thresholds, alpha / 2)
    out_high, out_low = shown(both.below, alpha / 2), shown(both.above, alpha / 2)
    alive = ~(out_high | out_low)
    values = thresholds[:, 0]
    low = np.array([values[a].min() if a.any() else np.nan for a in alive.T])
    high = np.array([values[a].max() if a.any() else np.nan for a in alive.T])
    return low, high
