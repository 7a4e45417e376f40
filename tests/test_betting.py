"""Betting intervals and tests: capitals by hand, the interval's ends agreeing with the tests
at a limit, zero-flip runs that cannot pass small and can pass large, and the wrong-pass rate
of the failing cells of issue 34 (the whole grid: `make calibration`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.calibration import ALPHA, betting_verdicts, outcomes
from harness.analysis import betting
from harness.analysis.betting import Prepared, interval, pool_interval, pool_tests
from harness.analysis.gate_rules import three_way
from harness.records.pool import DROP, SHARE, Pool

LOG40 = math.log(40)


def test_capital_by_hand() -> None:
    """Two flip-free items against t = 0.5 (alpha 0.025, n = 2): the plug-in variances are
    (1/4 * 2^2) / 1 = 1 and (1 + 0) / 2 = 1/2, so lambda = sqrt(2 log 40 / (2 * 1)) = 1.92 and
    sqrt(2 log 40 / (2 * 1/2)) = 2.72, both cut at 0.9 / (1 - 0.5) = 1.8; each z = -0.5, so
    each item multiplies the capital by 1 + 1.8 * 0.5 = 1.9."""
    p = Prepared.of([0.0, 0.0], [1.0, 1.0], DROP, seed=0)
    got = p.log_evalue(np.array([0.5]), "below", 0.025)
    assert got[0] == pytest.approx(2 * math.log(1.9))
    # the mirror bet against "mean <= 0.5": z = +0.5, cut at 0.9 / (0.5 + 1) = 0.6
    above = p.log_evalue(np.array([0.5]), "above", 0.025)
    assert above[0] == pytest.approx(2 * math.log(1 - 0.6 * 0.5))


def test_weights_enter_as_w_over_the_largest_weight() -> None:
    """One flip-free item of weight 1 beside one of weight 3, t = 0.5: z = -0.5/3 then -0.5."""
    p = Prepared.of([0.0, 0.0], [1.0, 3.0], DROP, seed=0, count=1)
    got = p.log_evalue(np.array([0.5]), "below", 0.025)
    assert got[0] == pytest.approx(math.log(1 + 1.8 * 0.5 / 3) + math.log(1 + 1.8 * 0.5))


@pytest.mark.parametrize(("n", "passes"), [(100, False), (200, False), (243, True), (500, True)])
def test_flip_free_runs_pass_a_two_point_limit_only_when_large(n: int, passes: bool) -> None:
    """0.98^100 = 13% of 100-item runs see no flip at a true 2-point drop: 100 flip-free items
    cannot pass; 243 can (the exact binomial bound is 183)."""
    low, high = interval(np.zeros(n), np.ones(n), 0.95, DROP, seed=0) or (0, 0)
    assert low < 0 < high  # never zero width
    assert (three_way(low, 0.0, high, 0.02, "upper_ci") == "pass") is passes


def test_the_interval_ends_agree_with_the_tests_at_the_limit() -> None:
    """The tests reject a half-line of thresholds, so `three_way` on the interval is the
    test at the limit (what the calibration simulates) for any limit."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 400))
        x = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.05, 0.88, 0.07])
        w = np.where(rng.random(n) < 0.45, 3.0, 1.0)
        low, high = interval(x, w, 0.95, DROP, seed=0) or (0, 0)
        p = Prepared.of(x, w, DROP, seed=0)
        for limit in np.linspace(-0.2, 0.3, 26):
            below = bool(p.rejects(limit, "below", ALPHA)[0])
            above = bool(p.rejects(limit, "above", ALPHA)[0])
            verdict = three_way(low, 0.0, high, float(limit), "upper_ci")
            expected = "pass" if below else "fail" if above else "undecided"
            if abs(limit - high) > 1e-8 and abs(limit - low) > 1e-8:
                assert verdict == expected, (n, limit, low, high)


@pytest.mark.parametrize(
    ("n", "psi", "mix", "share"),
    [
        (100, 0.02, "equal", False),  # 13.0% wrong pass before
        (100, 0.02, "heavy45", False),  # 27.6% before
        (10, 0.085, "equal", False),  # 60% before
        (20, 0.085, "heavy50x3", False),
        (100, 0.0, "heavy45", True),  # the regression share at its limit: 12-31% before
    ],
)
def test_a_drop_at_the_limit_is_wrongly_passed_at_most_alpha(
    n: int, psi: float, mix: str, share: bool
) -> None:
    runs = 1000
    got = outcomes(np.random.default_rng(34), runs, n, psi, 0.02, mix, share)
    assert got is not None
    passed, _ = betting_verdicts(*got, SHARE if share else DROP)
    assert passed.mean() <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_a_pool_sequence_is_exact_at_the_pool_end_and_valid_before() -> None:
    rng = np.random.default_rng(1)
    n = 400
    x = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.04, 0.92, 0.04])
    w = np.where(rng.random(n) < 0.45, 3.0, 1.0)
    pool = Pool(size=n, total_weight=float(w.sum()), max_weight=3.0, range=DROP)
    mean = float(w @ x / w.sum())
    assert pool_interval(x, w, pool, 0.95) == (mean, mean)  # the whole pool: known
    low, high = pool_interval(x[:200], w[:200], pool, 0.95)
    assert low < mean < high
    # the values left cannot reach a threshold far from the mean: refuted outright
    below, above = pool_tests(x[: n - 1], w[: n - 1], pool, mean + 0.05, ALPHA)
    assert below and not above


def test_the_pool_sequence_wrongly_passes_at_most_alpha_however_often_it_looks() -> None:
    """A pool whose drop is at the limit or more, looked at after every 25 items."""
    rng = np.random.default_rng(17)
    n, runs, wrong, nulls = 500, 400, 0, 0
    w = np.where(rng.random(n) < 0.45, 3.0, 1.0)
    pool = Pool(size=n, total_weight=float(w.sum()), max_weight=3.0, range=DROP)
    for _ in range(runs):
        u = rng.random(n)
        x = np.where(u < 0.07, 1.0, np.where(u < 0.12, -1.0, 0.0))
        if float(w @ x / w.sum()) < 0.02:
            continue
        nulls += 1
        y = betting.pool_values(pool, x, w)
        caps = betting._pool_log_capital(y, np.array([0.02]), pool, "below", ALPHA)[0]
        wrong += bool((caps[24::25] >= LOG40).any())
    assert nulls > 100
    assert wrong / nulls <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / nulls)
