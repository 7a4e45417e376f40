"""Answer extraction, rule by rule, on hand-made outputs of a chat model."""

from __future__ import annotations

import pytest

from harness.analysis.extract import (
    by_regex,
    choice_label,
    final_number,
    numbers,
    show_number,
    words_value,
)
from harness.analysis.scorers import Scorer, extracted, score
from harness.records import EvalItem, Source


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7 + 4 = 11", 11.0),  # the last number, not the first
        ("11", 11.0),
        ("The answer is 11.", 11.0),
        ("a hexagon has six sides", 6.0),
        ("There are twenty-one apples", 21.0),
        ("one hundred and five", 105.0),
        ("three thousand two hundred", 3200.0),
        ("It costs 1,200 dollars", 1200.0),
        ("It costs 1200 dollars", 1200.0),
        ("12.0", 12.0),
        ("about -3 degrees", -3.0),
        (".5 of it", 0.5),
        ("first 3, then 4 #### 7\nbut later 9", 7.0),  # an explicit final answer wins
        ("so \\boxed{42} and 43 more", 42.0),
        ("The answer is: 18 because 9 * 2", 18.0),
        ("I have zero idea", 0.0),
        # the last equation's result, though the operands come up again (SmolLM2's own words)
        ("17 + 21 = 38\n\nIn this case, 17 + 21 is a simple addition", 38.0),
        ("69 + 48 equals 196.", 196.0),
        ("x = 5, and the answer is 7", 7.0),  # an explicit answer still wins
        ("no number here", None),
    ],
)
def test_final_number(text: str, value: float | None) -> None:
    assert final_number(text) == value


def test_number_words_and_values() -> None:
    assert words_value("twenty one") == 21 and words_value("ninety-nine") == 99
    assert words_value("two thousand and twelve") == 2012 and words_value("hundred") == 100
    assert numbers("ten or 10 or ten thousand") == [10.0, 10.0, 10000.0]
    assert [show_number(x) for x in (12.0, 1200.0, 0.5, -3.0)] == ["12", "1200", "0.5", "-3"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("(B)", "B"),
        ("B) because it is", "B"),
        ("**C**", "C"),
        ("The answer is D.", "D"),
        ("I think the answer is (a)", "A"),
        ("C. Paris", "C"),
        ("Because it rains", None),
        ("", None),
    ],
)
def test_choice_label(text: str, label: str | None) -> None:
    assert choice_label(text) == label


def test_regex_takes_the_first_group_or_the_whole_match() -> None:
    assert by_regex(r"Final: (\w+)", "x Final: yes y") == "yes"
    assert by_regex(r"\d+", "a 12 b") == "12"
    assert by_regex(r"Final: (\w+)", "nothing") is None


def item(scorer: Scorer, ref: str, extract: str | None = None) -> EvalItem:
    return EvalItem(
        id="x", source=Source("t", 1), prompt="p", reference=(ref,), scorer=scorer, extract=extract
    )


def test_scores_see_the_extracted_answer() -> None:
    assert score(item(Scorer.NUMERIC, "11"), "7 + 4 = 11") == 1.0
    assert score(item(Scorer.NUMERIC, "6"), "A hexagon has six sides.") == 1.0
    assert score(item(Scorer.NUMERIC, "1,200"), "That is 1200 in total") == 1.0
    assert score(item(Scorer.NUMERIC, "12"), "twelve, or 12.0") == 1.0
    assert score(item(Scorer.CHOICE, "B"), "The correct option is **B**") == 1.0
    assert score(item(Scorer.NUMERIC, "3"), "no idea") == 0.0  # no answer: wrong, not None
    assert extracted(item(Scorer.NUMERIC, "11"), "7 + 4 = 11") == "11"
    # the item's own regex runs first: here it picks the number after "total"
    cut = item(Scorer.NUMERIC, "5", extract=r"total (\d+)")
    assert score(cut, "total 5, then 9 more") == 1.0 and extracted(cut, "none") is None
    assert score(item(Scorer.EXACT, "yes", extract=r"^(\w+)"), "yes, of course") == 1.0
