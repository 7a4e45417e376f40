"""Answer extraction before scoring (pure), in the manner of lm-eval's filters: what a chat
model's sentence says the answer is.

- numbers: an explicit final answer (`#### N`, `answer is N`, `\\boxed{N}`) wins, else the
  result of the last equation (`= N`, `equals N`: a chat model states its sum, then talks on
  and mentions the operands again), else the last number in the text; digits with thousands
  separators or decimals, and number words (zero ... twenty, the tens, hundred, thousand:
  "twenty-one", "one hundred and five");
- option labels: `The answer is B`, `**B**`, `(B)`, `B)`, or a label opening the output;
- an item's own `extract` regex: its first group (or the whole match).
"""

from __future__ import annotations

import re

UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WORD_VALUES = {w: i for i, w in enumerate(UNITS)}
WORD_VALUES |= {w: 20 + 10 * i for i, w in enumerate(_TENS)}
SCALES = {"hundred": 100, "thousand": 1000}
_DIGITS = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_WORD = "|".join([*WORD_VALUES, *SCALES])
# A run of number words: "twenty-one", "one hundred and five", "three thousand two hundred".
_WORDS = rf"\b(?:{_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_WORD}))*\b"
NUMBER = re.compile(rf"(?P<digits>{_DIGITS})|(?P<words>{_WORDS})", re.IGNORECASE)
_FINAL = re.compile(
    r"####\s*(?P<a>[^\n]+)|\\boxed\{(?P<b>[^}]*)\}|answer\s+is\s*:?\s*(?P<c>[^\n]+)", re.IGNORECASE
)
_RESULT = re.compile(r"(?:=|\bequals\b)\s*(?P<r>[^\n=]+)", re.IGNORECASE)
_CHOICE_MARKED = re.compile(
    r"answer\s+is\s*:?\s*\(?\**([A-Z])\b|\*\*\(?([A-Z])\)?\*\*|\(([A-Z])\)", re.IGNORECASE
)
_CHOICE_CLOSED = re.compile(r"(?:^|\s)([A-Z])\)")
_CHOICE_OPENING = re.compile(r"^\s*\(?([A-Za-z0-9])\)?(?=$|[\s.):,])")


def words_value(text: str) -> int | None:
    """The value of a run of number words, or None if it does not parse."""
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", text.lower()):
        if word in ("", "and"):
            continue
        if word in WORD_VALUES:
            current += WORD_VALUES[word]
        elif word in SCALES:
            current = max(current, 1) * SCALES[word]
            if SCALES[word] >= 1000:
                total, current = total + current, 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _value(match: re.Match[str]) -> float | None:
    if match.group("digits"):
        try:
            return float(match.group("digits").replace(",", ""))
        except ValueError:
            return None
    value = words_value(match.group("words"))
    return None if value is None else float(value)


def numbers(text: str) -> list[float]:
    """Every number in the text, in order (digits and number words)."""
    return [v for m in NUMBER.finditer(text) if (v := _value(m)) is not None]


def _last_leading(matches: list[re.Match[str]], groups: tuple[str, ...]) -> float | None:
    """The first number after the last match that has one."""
    for m in reversed(matches):
        found = numbers(next((m.group(g) for g in groups if m.group(g)), ""))
        if found:
            return found[0]
    return None


def final_number(text: str) -> float | None:
    """The answer a sentence gives: an explicit final answer's first number, else the last
    equation's result, else the last number of the text."""
    for pattern, groups in ((_FINAL, ("a", "b", "c")), (_RESULT, ("r",))):
        value = _last_leading(list(pattern.finditer(text)), groups)
        if value is not None:
            return value
    found = numbers(text)
    return found[-1] if found else None


def choice_label(text: str) -> str | None:
    """The option label an output picks, upper-cased, or None."""
    for pattern in (_CHOICE_MARKED, _CHOICE_CLOSED):
        m = pattern.search(text)
        if m:
            return next(g for g in m.groups() if g).upper()
    m = _CHOICE_OPENING.match(text)
    return m.group(1).upper() if m else None


def by_regex(pattern: str, text: str) -> str | None:
    """The first group of the first match (the whole match if the pattern has no group)."""
    m = re.search(pattern, text)
    if m is None:
        return None
    return m.group(1) if m.re.groups else m.group(0)


def show_number(value: float) -> str:
    """12.0 -> "12", 1200.0 -> "1200", 0.5 -> "0.5"."""
    return str(int(value)) if value.is_integer() else repr(value)
