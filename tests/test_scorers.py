"""Scorers: hand-computed expected values."""

from __future__ import annotations

import pytest

from harness.analysis.scorers import (
    Scorer,
    is_right,
    normalize,
    score,
    score_baseline,
    word_similarity,
)
from harness.records import EvalItem, Source


def item(scorer: Scorer, *refs: str) -> EvalItem:
    return EvalItem(id="x", source=Source("t.jsonl", 1), prompt="p", reference=refs, scorer=scorer)


@pytest.mark.parametrize(
    ("scorer", "refs", "output", "expected"),
    [
        (Scorer.EXACT, ("42",), "42", 1.0),
        (Scorer.EXACT, ("42",), " 42\n", 1.0),
        (Scorer.EXACT, ("42",), "42.", 0.0),
        (Scorer.EXACT, ("a", "b"), "b", 1.0),
        (Scorer.NORMALIZED, ("New York",), "new  york!", 1.0),
        (Scorer.NORMALIZED, ("New York",), "york", 0.0),
        (Scorer.CONTAINS, ("Paris",), "It is paris, of course", 1.0),
        (Scorer.CONTAINS, ("Paris",), "Lyon", 0.0),
        (Scorer.REGEX, (r"^\d{3}$",), "123", 1.0),
        (Scorer.REGEX, (r"^\d{3}$",), "1234", 0.0),
        (Scorer.NUMERIC, ("1,000",), "the answer is 1000 units", 1.0),
        (Scorer.NUMERIC, ("0.5",), ".5", 1.0),
        (Scorer.NUMERIC, ("12",), "13", 0.0),
        (Scorer.NUMERIC, ("12",), "no number", 0.0),
        (Scorer.NUMERIC, ("-3",), "-3", 1.0),
        (Scorer.CHOICE, ("B",), "(b) because", 1.0),
        (Scorer.CHOICE, ("(C)",), "C.", 1.0),
        (Scorer.CHOICE, ("B",), "A", 0.0),
        (Scorer.CHOICE, ("B",), "Because", 0.0),
        (Scorer.FUZZY, ("abcd",), "abcd", 1.0),
        # Indel ratio: 2 * matches / total length = 2 * 3 / (4 + 3)
        (Scorer.FUZZY, ("abcd",), "abc", 6 / 7),
    ],
)
def test_reference_scorers(
    scorer: Scorer, refs: tuple[str, ...], output: str, expected: float
) -> None:
    assert score(item(scorer, *refs), output) == pytest.approx(expected)


def test_agreement_scores_the_candidate_against_the_baseline() -> None:
    agree = item(Scorer.AGREEMENT)
    # word lists [a b c d] vs [a b x d]: 3 common words, 2 * 3 / 8 = 0.75
    assert score(agree, "a b c d", baseline_output="a b x d") == pytest.approx(0.75)
    assert score(agree, "a b", baseline_output=None) is None
    assert score_baseline(agree, "anything") == 1.0


def test_missing_output_is_unscorable_not_zero() -> None:
    assert score(item(Scorer.EXACT, "1"), None) is None
    assert score_baseline(item(Scorer.AGREEMENT), None) is None


def test_helpers() -> None:
    assert normalize("  Hello,   World! ") == "hello world"
    assert word_similarity("", "") == 1.0
    assert is_right(0.5) is True and is_right(0.49) is False and is_right(None) is None
