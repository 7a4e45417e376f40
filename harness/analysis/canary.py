"""A canary's guardrails as anytime-valid sequences, and the decision they give (pure).

A canary is looked at again and again while traffic flows (every cycle, every minute, each
time Argo Rollouts asks), so a fixed-n interval recomputed at each look would cross any limit
by chance sooner or later. Every guardrail here is a **betting test over a stream** (Waudby-
Smith & Ramdas 2024): the observations x_1, x_2, ... arrive in order,
each in a known range [lo, hi]; to show their mean is above a threshold t a gambler with
capital 1 bets K_n = prod(1 + lambda_i (x_i - t)), lambda_i >= 0 sized from x_1..x_{i-1} only;
while the mean is t or less, K is a nonnegative supermartingale and, by Ville's inequality,
reaches 1/a **at any look, ever** with chance at most a. The mirror bet shows it below t. A
threshold once rejected stays rejected (the test may stop there). The decision tests at each
limit with aGRAPA bets (`test_log_capital`: fast against one threshold); the confidence
sequence the dashboard draws (the thresholds never rejected) uses predictable plug-in bets
(`log_capital`: tuned for every threshold at once) and only narrows.

- **Paired evidence** (a shadowed request judged against the baseline's answer): x = 1 when
  the candidate's answer diverged (or regressed), else 0; the guardrail is the share.
- **Unpaired evidence** between the arms (errors, refusals, retries, feedback, output length,
  latency): each arm's observations in arrival order are paired one to one, i-th canary with
  i-th stable, and x = canary - stable (range [lo - hi, hi - lo]) has the difference of the
  arms' means as its mean. The arms are independent streams, so the pairs are i.i.d. when
  each arm's are; the stable arm's surplus (it gets most traffic) waits for its partner.
  A betting two-sample test with unequal rates would use all of it; pairing keeps the
  one-sample machinery and its proof, and the canary arm's count is what limits power anyway.

The decision (`decide`): **rollback** as soon as any guardrail's sequence lies wholly beyond
its limit (its "above the limit" test rejected), **promote** once every guardrail's lies
within it (its "below" test rejected) and enough requests were shadowed, else **continue**;
whichever comes first stays. Each of the G guardrails tests at a / G (Bonferroni), so an A/A
canary is rolled back with chance at most a, and a candidate exactly at a limit is promoted
with chance at most a — `experiments/canary_simulation.py` and `tests/test_canary.py` show both
over a day of traffic looked at every minute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# A bet stakes at most this share of what keeps the capital positive (as in `betting`).
TRUNCATE = 0.9
Decision = Literal["promote", "continue", "rollback"]
GRID = 201  # thresholds tried for a guardrail's confidence sequence (its chart)


def bet_sizes(u: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bet sizes for values u in [0, 1] (last axis: time): from the
    values before each only, a running mean and variance seeded with one pseudo-value of
    variance 1/4, sqrt(2 log(2/a) / (var t log(t + 1))) (Waudby-Smith & Ramdas' PrPl bets for
    a sequence)."""
    steps = u.shape[-1]
    t = np.arange(1, steps + 1, dtype=np.float64)
    mean_incl = (0.5 + np.cumsum(u, axis=-1)) / (t + 1)
    sq = np.cumsum((u - mean_incl) ** 2, axis=-1)
    before = np.concatenate([np.zeros((*u.shape[:-1], 1)), sq[..., :-1]], axis=-1)
    var = (0.25 + before) / t
    out: np.ndarray = np.sqrt(2 * math.log(2 / alpha) / (var * t * np.log(t + 1)))
    return out


def log_capital(u: np.ndarray, tau: np.ndarray | float, above: bool, alpha: float) -> np.ndarray:
    """The running log capital of the bet that the mean of u (in [0, 1], last axis time) is
    above `tau` (`above`) or below it, for each threshold: shape (thresholds, ..., time)."""
    lam = bet_sizes(u, alpha)
    tt = np.asarray(tau, dtype=np.float64).reshape((-1,) + (1,) * u.ndim)
    z = u[None] - tt
    if above:
        cap = np.maximum(tt, 1e-12)  # 1 + lam z >= 1 - lam tau: keep it positive
    else:
        z, cap = -z, np.maximum(1 - tt, 1e-12)
    out: np.ndarray = np.cumsum(np.log1p(np.minimum(lam[None], TRUNCATE / cap) * z), axis=-1)
    return out


def test_log_capital(u: np.ndarray, tau: float, above: bool) -> np.ndarray:
    """The running log capital of the test that the mean of u (in [0, 1], last axis time) is
    above `tau` (`above`) or below it, with aGRAPA bets (Waudby-Smith & Ramdas §B): each
    lambda = (m - tau) / (v + (m - tau)^2), the predictable mean m and variance v seeded with
    one pseudo-value of mean 1/2 and variance 1/4, zero when the past points the other way.
    They grow the capital near the fastest rate the data allow against one threshold (the
    plug-in bets of `log_capital` are tuned to cover every threshold at once, a sequence's
    width), so a decision at the limit comes sooner; any predictable lambda >= 0 keeps the
    capital a supermartingale under the null, so validity is the same."""
    steps = u.shape[-1]
    t = np.arange(1, steps + 1, dtype=np.float64)
    mean_incl = (0.5 + np.cumsum(u, axis=-1)) / (t + 1)
    mean = np.concatenate([np.full((*u.shape[:-1], 1), 0.5), mean_incl[..., :-1]], axis=-1)
    sq = np.cumsum((u - mean_incl) ** 2, axis=-1)
    var = (0.25 + np.concatenate([np.zeros((*u.shape[:-1], 1)), sq[..., :-1]], axis=-1)) / t
    gap = mean - tau if above else tau - mean
    cap = TRUNCATE / max(tau if above else 1 - tau, 1e-12)
    lam = np.clip(gap / (var + gap**2), 0.0, cap)
    z = u - tau if above else tau - u
    out: np.ndarray = np.cumsum(np.log1p(lam * z), axis=-1)
    return out


@dataclass(frozen=True, slots=True)
class Guardrail:
    """One limit a canary must keep: its name, the largest mean allowed (a share, or the
    canary's excess over the stable arm), and the range [lo, hi] each observation (paired)
    or each arm's observation (unpaired) lies in."""

    name: str
    limit: float
    lo: float = 0.0
    hi: float = 1.0
    paired: bool = True


@dataclass(frozen=True, slots=True)
class State:
    """Where a guardrail's sequence stands after n observations: its mean, the confidence
    sequence's ends, and whether it was ever shown beyond or within its limit."""

    name: str
    n: int
    mean: float | None
    low: float
    high: float
    limit: float
    beyond: bool
    within: bool


def values(g: Guardrail, canary: Sequence[float], stable: Sequence[float] = ()) -> np.ndarray:
    """A guardrail's observations: the paired values, or canary minus stable paired in
    arrival order (the longer arm's surplus waits)."""
    c = np.clip(np.asarray(canary, dtype=np.float64), g.lo, g.hi)
    if g.paired:
        return c
    s = np.clip(np.asarray(stable, dtype=np.float64), g.lo, g.hi)
    n = min(len(c), len(s))
    out: np.ndarray = c[:n] - s[:n]
    return out


def span(g: Guardrail) -> tuple[float, float]:
    """The range of one observation: [lo, hi] paired, [lo - hi, hi - lo] as a difference."""
    return (g.lo, g.hi) if g.paired else (g.lo - g.hi, g.hi - g.lo)


def state(g: Guardrail, x: np.ndarray, alpha: float) -> State:
    """The guardrail after the observations x (in order), tested at level alpha."""
    lo, hi = span(g)
    width = hi - lo
    n = int(x.shape[-1])
    if n == 0:
        return State(g.name, 0, None, lo, hi, g.limit, False, False)
    u = (x - lo) / width
    tau = (g.limit - lo) / width
    bar = math.log(1 / alpha)
    beyond = bool(test_log_capital(u, tau, True).max() >= bar)
    within = bool(test_log_capital(u, tau, False).max() >= bar)
    low, high = sequence_ends(u, alpha)
    return State(
        g.name, n, float(x.mean()), lo + low * width, lo + high * width, g.limit, beyond, within
    )


def sequence_ends(u: np.ndarray, alpha: float) -> tuple[float, float]:
    """The confidence sequence's ends now (values in [0, 1]): the thresholds on a grid that
    neither test has rejected at any look so far."""
    grid = np.linspace(0.0, 1.0, GRID)
    bar = math.log(1 / alpha / 2)  # each side at a/2: the sequence covers with 1 - a
    above = log_capital(u, grid, True, alpha / 2).max(axis=-1) >= bar  # mean > t shown
    below = log_capital(u, grid, False, alpha / 2).max(axis=-1) >= bar  # mean < t shown
    kept = grid[~(above | below)]
    if kept.size == 0:  # the grid's step is coarser than the sequence: its mean's cell
        m = float(u.mean())
        return max(0.0, m - 1 / (GRID - 1)), min(1.0, m + 1 / (GRID - 1))
    return float(kept.min()), float(kept.max())


def decide(states: Sequence[State], shadowed: int, min_shadowed: int) -> Decision:
    """Rollback when any guardrail was shown beyond its limit; promote when every one was
    shown within it and at least `min_shadowed` requests were shadowed; else continue."""
    if any(s.beyond for s in states):
        return "rollback"
    if states and all(s.within for s in states) and shadowed >= min_shadowed:
        return "promote"
    return "continue"


def level(alpha: float, guardrails: int) -> float:
    """Each guardrail's test level: a / G, so that any of G falsely rejecting has chance a."""
    return alpha / max(guardrails, 1)


def first_crossing(x: np.ndarray, g: Guardrail, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """For runs of observations x (runs, n): the first observation count at which each run's
    guardrail is shown beyond its limit, and within it (n + 1: never)."""
    lo, hi = span(g)
    u = (x - lo) / (hi - lo)
    tau = (g.limit - lo) / (hi - lo)
    bar = math.log(1 / alpha)
    n = x.shape[-1]
    out = []
    for above in (True, False):
        hit = test_log_capital(u, tau, above) >= bar
        first = np.where(hit.any(axis=-1), hit.argmax(axis=-1) + 1, n + 1)
        out.append(first)
    return out[0], out[1]


def simulate(
    guardrails: Sequence[Guardrail],
    draw: Sequence[np.ndarray],
    alpha: float,
    min_shadowed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Decisions of many simulated canaries, checked after every observation (a look every
    minute is a subset of these looks, so its error rates are at most these): `draw[k]` is
    guardrail k's observations, (runs, n) on one clock (the k-th observation of every
    guardrail arrives together). Returns per run the count at which it was rolled back and
    at which it was promoted (n + 1: never), the earlier of the two being its decision."""
    a = level(alpha, len(guardrails))
    n = draw[0].shape[-1]
    crossings = [first_crossing(x, g, a) for g, x in zip(guardrails, draw, strict=True)]
    rollback = np.min(np.stack([c[0] for c in crossings]), axis=0)
    promote = np.max(np.stack([c[1] for c in crossings]), axis=0)
    promote = np.where(promote <= n, np.maximum(promote, min_shadowed), n + 1)
    promote = np.where(promote <= n, promote, n + 1)
    rolled = np.where(rollback <= promote, rollback, n + 1)
    promoted = np.where(promote < rollback, promote, n + 1)
    return rolled, promoted
