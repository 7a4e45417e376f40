"""Pairing: outcomes, first divergence, escaped word diff."""

from __future__ import annotations

from harness.analysis.pairing import diff_ops, first_divergence, outcome, pair
from harness.analysis.scorers import Scorer
from harness.records import Difficulty, EvalItem, Generation, Outcome, Source


def test_first_divergence() -> None:
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert first_divergence([], [4]) == 0


def test_outcomes() -> None:
    assert outcome(1.0, 0.0, False) is Outcome.REGRESSION
    assert outcome(0.0, 1.0, False) is Outcome.IMPROVEMENT
    assert outcome(1.0, 1.0, True) is Outcome.IDENTICAL
    assert outcome(0.0, 0.0, False) is Outcome.CHANGED
    assert outcome(0.6, 0.4, False) is Outcome.REGRESSION  # right means >= 0.5
    assert outcome(None, 1.0, False) is Outcome.UNSCORABLE


def test_pair_scores_both_sides() -> None:
    src = Source("t.jsonl", 1)
    items = [
        EvalItem(
            id="a", source=src, prompt="p", reference=("42",), difficulty=Difficulty.HARD, weight=3
        ),
        EvalItem(id="b", source=src, prompt="p", scorer=Scorer.AGREEMENT),
    ]
    base = [
        Generation(item_id="a", output="42", output_ids=(1, 2)),
        Generation(item_id="b", output="x y z w", output_ids=(5,)),
    ]
    cand = [
        Generation(item_id="a", output="41", output_ids=(1, 3)),
        Generation(item_id="b", output="x y q w", output_ids=(6,)),
    ]
    a, b = pair(items, base, cand)
    assert (a.baseline.score, a.candidate.score, a.outcome) == (1.0, 0.0, Outcome.REGRESSION)
    assert a.first_divergence == 1 and a.similarity == 0.0
    # A reference-free item has no score on either side (never in accuracy or flips); with no
    # similarity measured it is unscorable, else judged by meaning against the threshold.
    assert (b.baseline.score, b.candidate.score, b.outcome) == (None, None, Outcome.UNSCORABLE)
    assert b.similarity == 0.75 and b.meaning is None
    _, equal = pair(items, base, cand, meaning={"b": 0.8}, threshold=0.8)
    _, moved = pair(items, base, cand, meaning={"b": 0.79}, threshold=0.8)
    assert (equal.outcome, equal.meaning) == (Outcome.EQUIVALENT, 0.8)
    assert (moved.outcome, moved.meaning) == (Outcome.DIVERGED, 0.79)
    _, same = pair(items, base, base)
    assert (same.outcome, same.meaning, same.baseline.score) == (Outcome.IDENTICAL, 1.0, None)


def test_diff_ops_by_hand() -> None:
    left, right = diff_ops("say <script>alert(1)</script> now", "say {{ 7*7 }} now")
    assert left == [["=", "say"], ["-", "<script>alert(1)</script>"], ["=", "now"]]
    assert right == [["=", "say"], ["+", "{{ 7*7 }}"], ["=", "now"]]
    left, right = diff_ops("a b c", "a x y c d")
    assert left == [["=", "a"], ["-", "b"], ["=", "c"]]
    assert right == [["=", "a"], ["+", "x y"], ["=", "c"], ["+", "d"]]
