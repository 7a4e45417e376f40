"""Pure scorers: (item, output, baseline_output) -> score in [0, 1], or None if unscorable.

One explicit table, `SCORERS`, keyed by the `Scorer` enum. A score of at least 0.5 counts
as "right" (binary scorers return exactly 0 or 1). None means the item could not be scored
(no output, or an `agreement` item without a baseline output); it is counted and shown,
never turned into a silent 0.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable

from rapidfuzz import fuzz
from rapidfuzz.distance import Indel

from harness.records import CHOICE_PATTERN, EvalItem, Scorer

RIGHT = 0.5
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PUNCT = str.maketrans("", "", string.punctuation)
_CHOICE_IN_OUTPUT = re.compile(r"^\s*\(?([A-Za-z0-9])\)?(?=$|[\s.):,])")


def normalize(text: str) -> str:
    """Casefold, drop ASCII punctuation, collapse whitespace."""
    return " ".join(text.casefold().translate(_PUNCT).split())


def words(text: str) -> list[str]:
    return text.split()


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def _exact(refs: tuple[str, ...], out: str) -> float:
    return float(out.strip() in {r.strip() for r in refs})


def _normalized(refs: tuple[str, ...], out: str) -> float:
    return float(normalize(out) in {normalize(r) for r in refs})


def _contains(refs: tuple[str, ...], out: str) -> float:
    return float(any(normalize(r) in normalize(out) for r in refs))


def _regex(refs: tuple[str, ...], out: str) -> float:
    return float(any(re.search(r, out) for r in refs))


def _numeric(refs: tuple[str, ...], out: str) -> float:
    got = first_number(out)
    if got is None:
        return 0.0
    return float(
        any(math.isclose(got, float(r.replace(",", "")), rel_tol=1e-9, abs_tol=1e-9) for r in refs)
    )


def _choice(refs: tuple[str, ...], out: str) -> float:
    match = _CHOICE_IN_OUTPUT.match(out)
    if match is None:
        return 0.0
    labels = {m.group(1).casefold() for r in refs if (m := CHOICE_PATTERN.match(r))}
    return float(match.group(1).casefold() in labels)


def _fuzzy(refs: tuple[str, ...], out: str) -> float:
    return max(fuzz.ratio(normalize(out), normalize(r)) for r in refs) / 100.0


def word_similarity(a: str, b: str) -> float:
    """Normalized Indel similarity of the two word lists, in [0, 1]; 1.0 for two empty texts."""
    return Indel.normalized_similarity(words(a), words(b))


ReferenceScorer = Callable[[tuple[str, ...], str], float]

SCORERS: dict[Scorer, ReferenceScorer | None] = {
    Scorer.EXACT: _exact,
    Scorer.NORMALIZED: _normalized,
    Scorer.CONTAINS: _contains,
    Scorer.REGEX: _regex,
    Scorer.NUMERIC: _numeric,
    Scorer.CHOICE: _choice,
    Scorer.FUZZY: _fuzzy,
    Scorer.AGREEMENT: None,  # scored against the baseline's output, below
}


def score(item: EvalItem, output: str | None, baseline_output: str | None = None) -> float | None:
    """Score one output. For `agreement` items, pass the baseline's output; the baseline
    itself (baseline_output None and scoring the baseline) is scored with `score_baseline`."""
    if output is None:
        return None
    scorer = SCORERS[item.scorer]
    if scorer is None:
        return None if baseline_output is None else word_similarity(output, baseline_output)
    return scorer(item.reference, output)


def score_baseline(item: EvalItem, output: str | None) -> float | None:
    """The baseline's score: an `agreement` item agrees with itself by definition."""
    if item.scorer is Scorer.AGREEMENT:
        return None if output is None else 1.0
    return score(item, output)


def is_right(value: float | None) -> bool | None:
    return None if value is None else value >= RIGHT
