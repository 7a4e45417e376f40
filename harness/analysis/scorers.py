"""Pure scorers: (item, output, baseline_output) -> score in [0, 1], or None if unscorable.

One table, `SCORERS` (a `harness.records.registry.Registry`): per scorer its name, whether
it needs a reference, how a reference is checked when an eval set is loaded, how the answer
is extracted from an output (`extract.py`: a final number, an option label), and its score
function. A built-in scorer is one member of `Scorer` and one `ScorerEntry` here; a scorer
of another package is one `ScorerEntry` it declares under the `harness.scorers` entry point.
An item's own `extract` regex runs first. A score of at least 0.5 counts as "right" (binary
scorers return exactly 0 or 1). None means the item could not be scored (no output, or an
`agreement` item without a baseline output); it is counted and shown, never turned into a
silent 0. An output from which no answer can be extracted is wrong (0), not unscorable.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz
from rapidfuzz.distance import Indel

from harness.analysis.extract import by_regex, choice_label, final_number, show_number
from harness.analysis.toolcalls import read_calls, reference_calls, show_call
from harness.records import EvalItem
from harness.records.registry import Registry

RIGHT = 0.5
_PUNCT = str.maketrans("", "", string.punctuation)
# An option label of the `choice` scorer: "B" or "(B)".
CHOICE_PATTERN = re.compile(r"^\(?([A-Za-z0-9])\)?$")


class Scorer(StrEnum):
    EXACT = "exact"
    NORMALIZED = "normalized"
    CONTAINS = "contains"
    REGEX = "regex"
    NUMERIC = "numeric"
    CHOICE = "choice"
    FUZZY = "fuzzy"
    AGREEMENT = "agreement"  # reference-free: the candidate against the baseline's output
    TOOL_CALL = "tool_call"  # the calls made: names, arguments by value, count and order


def normalize(text: str) -> str:
    """Casefold, drop ASCII punctuation, collapse whitespace."""
    return " ".join(text.casefold().translate(_PUNCT).split())


def words(text: str) -> list[str]:
    return text.split()


def word_similarity(a: str, b: str) -> float:
    """Normalized Indel similarity of the two word lists, in [0, 1]; 1.0 for two empty texts."""
    return Indel.normalized_similarity(words(a), words(b))


# --- score functions: (references, output) -> score ---------------------------------------


def _exact(refs: tuple[str, ...], out: str) -> float:
    return float(out.strip() in {r.strip() for r in refs})


def _normalized(refs: tuple[str, ...], out: str) -> float:
    return float(normalize(out) in {normalize(r) for r in refs})


def _contains(refs: tuple[str, ...], out: str) -> float:
    return float(any(normalize(r) in normalize(out) for r in refs))


def _regex(refs: tuple[str, ...], out: str) -> float:
    return float(any(re.search(r, out) for r in refs))


def _numeric(refs: tuple[str, ...], answer: str) -> float:
    """`answer` is the extracted number ("11", "1200", "0.5")."""
    got = float(answer)
    return float(
        any(math.isclose(got, float(r.replace(",", "")), rel_tol=1e-9, abs_tol=1e-9) for r in refs)
    )


def _choice(refs: tuple[str, ...], answer: str) -> float:
    """`answer` is the extracted option label."""
    labels = {m.group(1).casefold() for r in refs if (m := CHOICE_PATTERN.match(r))}
    return float(answer.casefold() in labels)


def _number_of(text: str) -> str | None:
    value = final_number(text)
    return None if value is None else show_number(value)


def _calls_shown(out: str) -> str | None:
    """The calls an output makes, shown (`get_weather(city="Paris")`); None: no call, or one
    that cannot be read."""
    found = read_calls(out)
    if not found.calls or found.malformed:
        return None
    return "; ".join(show_call(c) for c in found.calls)


def _tool_call(refs: tuple[str, ...], answer: str) -> float:
    """`answer`: the calls shown; right when they are one reference's calls exactly."""
    wanted = {"; ".join(show_call(c) for c in reference_calls(r) or ()) for r in refs}
    return float(answer in wanted)


def _fuzzy(refs: tuple[str, ...], out: str) -> float:
    return max(fuzz.ratio(normalize(out), normalize(r)) for r in refs) / 100.0


# --- reference checks: the problem with a reference, or None --------------------------------


def _any_text(ref: str) -> str | None:
    return None


def _valid_regex(ref: str) -> str | None:
    try:
        re.compile(ref)
    except re.error as exc:
        return f"invalid regex {ref!r}: {exc}"
    return None


def _finite_number(ref: str) -> str | None:
    try:
        ok = math.isfinite(float(ref.replace(",", "")))
    except ValueError:
        ok = False
    return None if ok else f"numeric scorer needs a finite number as reference; got {ref!r}"


def _option_label(ref: str) -> str | None:
    if CHOICE_PATTERN.match(ref):
        return None
    return f"choice scorer needs an option label such as 'B' or '(B)'; got {ref!r}"


def _call_reference(ref: str) -> str | None:
    if reference_calls(ref) is not None:
        return None
    return (
        'tool_call scorer needs a call as JSON text: {"name": "get_weather", "arguments": '
        f'{{"city": "Paris"}}}} or a list of them; got {ref!r}'
    )


ScoreFn = Callable[[tuple[str, ...], str], float]


def _whole(text: str) -> str | None:
    return text


@dataclass(frozen=True, slots=True)
class ScorerEntry:
    # None: reference-free, scored against the baseline's output (`agreement`).
    score: ScoreFn | None
    check_reference: Callable[[str], str | None] = _any_text
    # The answer in an output, as the score function compares it; None: there is none.
    extract: Callable[[str], str | None] = _whole
    # The reference is text the model could say (its per-token NLL is measured); a regex is not.
    literal_reference: bool = True

    @property
    def needs_reference(self) -> bool:
        return self.score is not None


SCORERS: Registry[ScorerEntry] = Registry(
    "scorer",
    "harness.scorers",
    {
        Scorer.EXACT: ScorerEntry(_exact),
        Scorer.NORMALIZED: ScorerEntry(_normalized),
        Scorer.CONTAINS: ScorerEntry(_contains),
        Scorer.REGEX: ScorerEntry(_regex, _valid_regex, literal_reference=False),
        Scorer.NUMERIC: ScorerEntry(_numeric, _finite_number, extract=_number_of),
        Scorer.CHOICE: ScorerEntry(_choice, _option_label, extract=choice_label),
        Scorer.FUZZY: ScorerEntry(_fuzzy),
        Scorer.AGREEMENT: ScorerEntry(None, literal_reference=False),
        Scorer.TOOL_CALL: ScorerEntry(
            _tool_call, _call_reference, extract=_calls_shown, literal_reference=False
        ),
    },
    accept=lambda e: isinstance(e, ScorerEntry),
    is_a="a harness.analysis.scorers.ScorerEntry",
)


def scorer_of(item: EvalItem) -> ScorerEntry:
    return SCORERS.get(item.scorer)


def extracted(item: EvalItem, output: str | None) -> str | None:
    """The answer the scorer compares: the item's `extract` regex first, then the scorer's
    own extraction. None when there is no output or no answer in it."""
    if output is None:
        return None
    text = output if item.extract is None else by_regex(item.extract, output)
    return None if text is None else scorer_of(item).extract(text)


def score(item: EvalItem, output: str | None, baseline_output: str | None = None) -> float | None:
    """Score one output. For `agreement` items, pass the baseline's output; the baseline
    itself (baseline_output None and scoring the baseline) is scored with `score_baseline`."""
    if output is None:
        return None
    fn = scorer_of(item).score
    if fn is None:
        return None if baseline_output is None else word_similarity(output, baseline_output)
    answer = extracted(item, output)
    return 0.0 if answer is None else fn(item.reference, answer)


def reference_free(item: EvalItem) -> bool:
    """Judged against the baseline's output (by meaning), not against a reference."""
    return not scorer_of(item).needs_reference


def score_baseline(item: EvalItem, output: str | None) -> float | None:
    """The baseline's score: a reference-free item agrees with itself by definition."""
    if not scorer_of(item).needs_reference:
        return None if output is None else 1.0
    return score(item, output)


def is_right(value: float | None) -> bool | None:
    return None if value is None else value >= RIGHT
