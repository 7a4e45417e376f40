"""Metrics: hand-computed expected values."""

from __future__ import annotations

import random

import pytest

from harness.analysis.stats import mcnemar_exact, paired_drop, weighted_accuracy, weighted_share
from harness.records import StatsSettings


def test_weighted_accuracy_by_hand() -> None:
    # (1*1 + 0*3 + 1*1) / (1 + 3 + 1) = 2 / 5
    assert weighted_accuracy([1.0, 0.0, 1.0], [1.0, 3.0, 1.0]) == pytest.approx(0.4)


def test_unscorable_items_are_left_out_of_both_sums() -> None:
    # (1*3) / 3; the None with weight 1 counts in neither sum
    assert weighted_accuracy([1.0, None], [3.0, 1.0]) == pytest.approx(1.0)


def test_nothing_scored_is_none() -> None:
    assert weighted_accuracy([], []) is None
    assert weighted_accuracy([None], [1.0]) is None


def test_mcnemar_exact_by_hand() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 2 * 0.5^5
    assert mcnemar_exact(3, 1) == pytest.approx(10 / 16)  # 2 * (1 + 4) / 16
    assert mcnemar_exact(1, 3) == mcnemar_exact(3, 1)
    assert mcnemar_exact(2, 2) == 1.0  # capped at 1


STATS = StatsSettings(seed=0)


def test_paired_drop_point_values_by_hand() -> None:
    # baseline (1*1 + 1*3 + 0*1) / 5 = 0.8, candidate (1*1 + 0*3 + 0*1) / 5 = 0.2
    got = paired_drop([1, 1, 0], [1, 0, 0], [1, 3, 1], STATS)
    assert got is not None
    assert (got.baseline, got.candidate, got.drop) == pytest.approx((0.8, 0.2, 0.6))
    assert got.ci_low <= got.drop <= got.ci_high


def test_the_interval_is_reproducible_and_seeded() -> None:
    rng = random.Random(0)
    base = [float(rng.random() < 0.8) for _ in range(60)]
    cand = [float(rng.random() < 0.7) for _ in range(60)]
    weights = [rng.choice((1.0, 3.0)) for _ in range(60)]
    a = paired_drop(base, cand, weights, STATS)
    b = paired_drop(base, cand, weights, STATS)
    c = paired_drop(base, cand, weights, StatsSettings(seed=8))
    assert a == b
    assert a != c


def test_identical_pairs_never_give_a_zero_width_interval() -> None:
    """No flip seen is not "no flip possible": 3 items rule out nothing near 0."""
    got = paired_drop([1, 0, 1], [1, 0, 1], [1, 3, 1], STATS)
    assert got is not None and got.drop == 0.0
    assert got.ci_low < -0.5 and got.ci_high > 0.5


def test_a_single_item_interval_spans_nearly_everything() -> None:
    got = paired_drop([1], [0], [3], STATS)
    assert got is not None and got.drop == 1.0
    assert got.ci_low < 0 and got.ci_high == pytest.approx(1.0)


def test_empty_slice_has_no_interval() -> None:
    assert paired_drop([], [], [], STATS) is None


def test_weighted_share_by_hand() -> None:
    got = weighted_share([True, False, False], [3, 1, 1], STATS)
    assert got is not None
    share, low, high = got
    assert share == pytest.approx(3 / 5)
    assert 0 <= low <= share <= high <= 1
