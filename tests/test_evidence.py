"""What a run can decide: items needed by hand, and simulations showing that the sequential
test keeps its promise (a wrong pass at most alpha however often it is looked at) where the
naive peek does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.evidence import (
    Scale,
    bets,
    confidence_sequence,
    design_effect,
    items_needed,
    shown,
)

CONFIDENCE = 0.95
ALPHA = (1 - CONFIDENCE) / 2  # a wrong pass: the pessimistic end of a 95% interval
SIMS, POOL, STEP = 2_000, 1_500, 50


def test_items_needed_by_hand_with_weights() -> None:
    # d = baseline - candidate per item; weights 1, 1, 3, 1, 1.
    values, weights = [1.0, 0.0, 0.0, -1.0, 0.0], [1.0, 1.0, 3.0, 1.0, 1.0]
    # sum w = 7; D = (1 - 1) / 7 = 0; psi = (1 + 1) / 7 = 2/7; deff = 5 * 13 / 49 = 65/49;
    # (z.975 + z.80)^2 = (1.959964 + 0.841621)^2 = 7.848879
    assert design_effect(weights) == pytest.approx(65 / 49)
    by_hand = 7.848879 * (2 / 7) / 0.1**2 * (65 / 49)  # 297.47
    assert items_needed(values, weights, 0.1, CONFIDENCE) == math.ceil(by_hand) == 298
    # an observed drop over the limit: the items that prove the loss, same formula
    over = [1.0, 1.0, 0.0, 0.0]  # D = 0.5, psi = 0.5, spread 0.25, deff 1
    assert items_needed(over, [1.0] * 4, 0.2, CONFIDENCE) == math.ceil(7.848879 * 0.25 / 0.09)
    assert items_needed(over, [1.0] * 4, 0.5, CONFIDENCE) is None  # at the limit: never
    assert items_needed([], [], 0.1, CONFIDENCE) is None


def test_smollm2_w8_figures() -> None:
    """psi = 0.085 (SmolLM2 W8A16 g64) and a 2-point limit at D = 0: 1,668 items for 80%
    power at the gate's one-sided 2.5% (the pessimistic end of a 95% interval); 1,314 at a
    one-sided 5%."""
    n = 10_000
    d = np.zeros(n)
    d[: int(0.0425 * n)], d[int(0.0425 * n) : int(0.085 * n)] = 1, -1
    assert items_needed(d, np.ones(n), 0.02, CONFIDENCE) == pytest.approx(1_668, abs=2)
    assert items_needed(d, np.ones(n), 0.02, 0.90) == pytest.approx(1_314, abs=2)


def paired_drops(rng: np.random.Generator, drop: float, psi: float) -> np.ndarray:
    """SIMS sequences of POOL per-item differences in {-1, 0, 1} with E[d] = drop and
    P(d != 0) = psi (p10 = (psi + drop) / 2, p01 = (psi - drop) / 2)."""
    u = rng.random((SIMS, POOL))
    p10, p01 = (psi + drop) / 2, (psi - drop) / 2
    return np.where(u < p10, 1.0, np.where(u < p10 + p01, -1.0, 0.0))


def weights_of(rng: np.random.Generator) -> np.ndarray:
    """The demo's mix: 45% hard items of weight 3, the rest weight 1."""
    return np.where(rng.random((SIMS, POOL)) < 0.45, 3.0, 1.0)


def monitored_pass(x: np.ndarray, threshold: float) -> np.ndarray:
    """Declared `pass` at some round (looked at after every STEP items)?"""
    won = shown(bets(x, threshold, ALPHA).below, ALPHA)[:, STEP - 1 :: STEP]
    return np.asarray(won.any(axis=1))


def test_a_drop_exactly_at_the_limit_is_wrongly_passed_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(14)
    limit = 0.02
    d, w = paired_drops(rng, limit, 0.12), weights_of(rng)
    scale = Scale.of(w, -1.0, 1.0)
    wrong = monitored_pass(scale.values(d, w), scale.threshold(limit)).mean()
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)
    assert wrong <= ALPHA + slack, wrong


def test_the_naive_peek_passes_a_drop_at_the_limit_more_often_than_alpha() -> None:
    """A normal interval recomputed after every round (what a bootstrap interval approximates)
    and stopped at the first round whose upper end is within the limit."""
    rng = np.random.default_rng(15)
    limit = 0.02
    d = paired_drops(rng, limit, 0.12)
    n = np.arange(1, POOL + 1)
    mean = np.cumsum(d, axis=1) / n
    var = np.cumsum(d * d, axis=1) / n - mean**2
    upper = mean + 1.959964 * np.sqrt(var / n)
    wrong = (upper[:, STEP - 1 :: STEP] <= limit).any(axis=1).mean()
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)
    assert wrong > ALPHA + slack, wrong


def test_a_drop_far_below_the_limit_mostly_passes_well_before_the_pool_is_spent() -> None:
    rng = np.random.default_rng(16)
    d, w = paired_drops(rng, 0.0, 0.04), weights_of(rng)
    scale = Scale.of(w, -1.0, 1.0)
    won = shown(bets(scale.values(d, w), scale.threshold(0.05), ALPHA).below, ALPHA)
    first = np.where(won.any(axis=1), won.argmax(axis=1) + 1, POOL + 1)
    assert (first <= POOL).mean() >= 0.9
    assert np.median(first) <= POOL / 2, np.median(first)


def test_a_proven_loss_is_shown_by_the_mirror_bet() -> None:
    rng = np.random.default_rng(17)
    d = paired_drops(rng, 0.15, 0.2)[:200]
    x = (d + 1) / 2
    lost = shown(bets(x, (0.02 + 1) / 2, ALPHA).above, ALPHA)
    assert lost[:, -1].mean() >= 0.9


def test_the_confidence_sequence_covers_the_mean_and_narrows() -> None:
    rng = np.random.default_rng(18)
    x = (rng.random(1_000) < 0.3).astype(float)
    low, high = confidence_sequence(x, 0.05)
    assert np.all(low <= high)
    assert low[-1] <= 0.3 <= high[-1]
    assert high[-1] - low[-1] < high[99] - low[99] < 1.0
    assert np.all(np.diff(low) >= 0) and np.all(np.diff(high) <= 0)  # intersected
