"""Metrics: hand-computed expected values."""

from __future__ import annotations

import pytest

from harness.metrics import weighted_accuracy


def test_weighted_accuracy_by_hand() -> None:
    # (1*1 + 0*3 + 1*1) / (1 + 3 + 1) = 2 / 5
    assert weighted_accuracy([1.0, 0.0, 1.0], [1.0, 3.0, 1.0]) == pytest.approx(0.4)


def test_unscorable_items_are_left_out_of_both_sums() -> None:
    # (1*3) / 3; the None with weight 1 counts in neither sum
    assert weighted_accuracy([1.0, None], [3.0, 1.0]) == pytest.approx(1.0)


def test_nothing_scored_is_none() -> None:
    assert weighted_accuracy([], []) is None
    assert weighted_accuracy([None], [1.0]) is None
