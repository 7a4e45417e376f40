"""What a run can decide: the sandwich variance and items needed by hand, the power the figure
delivers, its range, and what a sequential run's sequence would need."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.calibration import ALPHA, betting_verdicts, outcomes
from harness.analysis.evidence import floor, items_needed, sandwich, sequence_needed
from harness.records.pool import DROP, SHARE, Pool

CONFIDENCE = 0.95
# (sqrt(2 log 40) + 0.25 + z(0.8))^2 = (2.716203 + 0.25 + 0.841621)^2
Z2 = (math.sqrt(2 * math.log(40)) + 0.25 + 0.841621) ** 2


def test_the_sandwich_variance_by_hand() -> None:
    # x = 1, 0, 0, -1, 0 with weights 1, 1, 3, 1, 1: sum w = 7, D = 0;
    # v = 5 * (1 + 0 + 0 + 1 + 0) / 49 = 10/49
    assert sandwich([1.0, 0.0, 0.0, -1.0, 0.0], [1.0, 1.0, 3.0, 1.0, 1.0]) == pytest.approx(10 / 49)
    # heavy items carry the flips: 3^2 on each flip, deff would say less
    assert sandwich([1.0, -1.0, 0.0, 0.0], [3.0, 3.0, 1.0, 1.0]) == pytest.approx(4 * 18 / 64)


def test_items_needed_by_hand_with_weights() -> None:
    values, weights = [1.0, 0.0, 0.0, -1.0, 0.0], [1.0, 1.0, 3.0, 1.0, 1.0]
    need = items_needed(values, weights, 0.1, CONFIDENCE, DROP)
    assert need is not None
    assert need.items == math.ceil(Z2 * (10 / 49) / 0.1**2)  # 296
    assert need.low <= need.items and need.high is None  # 5 items cannot tell the side
    over = [1.0, 1.0, 0.0, 0.0]  # D = 0.5: v = 4 * (0.25 * 2 + 0.25 * 2) / 16 = 0.25
    got = items_needed(over, [1.0] * 4, 0.2, CONFIDENCE, DROP)
    assert got is not None and got.items == math.ceil(Z2 * 0.25 / 0.3**2)
    assert items_needed(over, [1.0] * 4, 0.5, CONFIDENCE, DROP) is None  # at the limit: never
    assert items_needed([], [], 0.1, CONFIDENCE, DROP) is None


def test_no_flip_seen_still_needs_the_bets_floor() -> None:
    """With no flip, the figure is the fewest items the bets need: each gains at most
    log(1 + 0.9 * 0.02 / 0.98), so log(40) / that = 202.7 -> 203 (and 243 in the tests of
    test_betting, where the first bets are smaller)."""
    assert floor(0.02, 0.0, DROP, ALPHA) == math.ceil(LOG40 / math.log1p(0.9 * 0.02 / 0.98))
    need = items_needed([0.0] * 100, [1.0] * 100, 0.02, CONFIDENCE, DROP)
    assert need is not None and need.items == floor(0.02, 0.0, DROP, ALPHA)
    # psi's upper end is 3.6%: a drop near 2 points is not ruled out, no upper end
    assert need.high is None
    more = items_needed([0.0] * 1000, [1.0] * 1000, 0.02, CONFIDENCE, DROP)
    assert more is not None and more.high == more.items  # 0.37% at most: the floor rules


LOG40 = math.log(40)


@pytest.mark.parametrize("mix", ["equal", "heavy50x3"])
def test_the_figure_delivers_its_power(mix: str) -> None:
    """The pilot is the truth (200,000 items): the runs of that size pass >= 80% of the time
    (less Monte Carlo error), at the project's mix too (hard items weigh 3 and flip 3x)."""
    rng = np.random.default_rng(20)
    pilot = outcomes(rng, 1, 200_000, 0.085, 0.0, mix, False)
    assert pilot is not None
    need = items_needed(pilot[0][0], pilot[1][0], 0.02, CONFIDENCE, DROP)
    assert need is not None
    runs = 400
    sims = outcomes(rng, runs, need.items, 0.085, 0.0, mix, False)
    assert sims is not None
    passed = betting_verdicts(*sims, DROP)[0].mean()
    assert passed >= 0.8 - 2 * math.sqrt(0.16 / runs), (need.items, passed)


def test_a_sequence_says_what_it_would_need() -> None:
    rng = np.random.default_rng(21)
    n = 1_000
    x = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.02, 0.96, 0.02])
    w = np.ones(n)
    pool = Pool(size=n, total_weight=float(n), max_weight=1.0, range=DROP)
    need = sequence_needed(x[:200], w[:200], pool, 0.02, CONFIDENCE, seed=0, sims=40)
    assert need is not None and 200 < need <= n
    share = Pool(size=n, total_weight=float(n), max_weight=1.0, range=SHARE)
    # every item run: nothing is left to need
    assert sequence_needed(x.clip(0), w, share, 0.02, CONFIDENCE, seed=0) is None
