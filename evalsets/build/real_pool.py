"""Write `evalsets/real-pool/*.jsonl`: the pool a sequential run of SmolLM2-135M-Instruct draws
from (`python -m evalsets.build.real_pool`), byte for byte. Every item is scored against a
reference the generator computes (no reference is typed by hand: `check` recomputes each one
from the item's own fields before anything is written), across families a model of that size
can partly do, each at a common level and a hard one at the edge of what it does; at least 40%
of the items are hard. `evalsets/real/` stays the 203-item set for quick runs."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evalsets.build.real import (
    FACTS_COMMON,
    FACTS_HARD,
    OPPOSITES_COMMON,
    OPPOSITES_HARD,
    WORDS_HARD,
)
from harness.analysis.extract import UNITS

OUT = Path(__file__).resolve().parents[2] / "evalsets" / "real-pool"
SEED = 14
ROOM = 96  # new tokens: room for a worked answer before the final number
SHORT = 32

WORDS_SHORT = [
    "cat",
    "dog",
    "sun",
    "red",
    "bed",
    "cup",
    "hat",
    "pen",
    "box",
    "map",
    "bus",
    "egg",
    "ant",
    "owl",
    "car",
    "fox",
    "jam",
    "leg",
    "net",
    "pig",
    "rat",
    "sky",
    "toy",
    "van",
    "web",
    "yak",
    "zoo",
    "bag",
    "fan",
    "gum",
]
WORDS_LONG = [  # the counting words of evalsets/real, and more
    *WORDS_HARD,
    "calendar",
    "hospital",
    "vacation",
    "sandwich",
    "triangle",
    "kangaroo",
    "pineapple",
    "breakfast",
    "notebook",
    "raincoat",
    "snowflake",
    "toothbrush",
    "waterfall",
    "basketball",
    "blueberry",
    "landscape",
    "pumpkin",
    "skeleton",
]
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
NUMBER_WORDS = UNITS[:11]  # zero to ten, as the numeric scorer reads them
# (unit asked for, unit given, how many of the first in one of the second)
CONVERSIONS_COMMON = (
    ("minutes", "hours", 60),
    ("seconds", "minutes", 60),
    ("days", "weeks", 7),
    ("months", "years", 12),
    ("centimeters", "meters", 100),
    ("grams", "kilograms", 1000),
)
CONVERSIONS_HARD = (
    ("hours", "days", 24),
    ("millimeters", "centimeters", 10),
    ("meters", "kilometers", 1000),
    ("minutes", "days", 1440),
    ("seconds", "hours", 3600),
    ("milliliters", "liters", 1000),
)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def item(
    id_: str, text: str, hard: bool, tag: str, reference: str, scorer: str, room: int
) -> dict[str, Any]:
    return {
        "id": id_,
        "messages": chat(text),
        "reference": reference,
        "scorer": scorer,
        "max_new_tokens": room,
        "difficulty": "hard" if hard else "common",
        "tags": [tag],
    }


def arithmetic(rng: random.Random) -> Iterator[dict[str, Any]]:
    kinds: list[tuple[bool, Callable[[], tuple[str, int]]]] = [
        (False, lambda: _op(rng.randint(1, 9), "+", rng.randint(1, 9))),
        (False, lambda: _op(rng.randint(2, 9), "times", rng.randint(2, 9))),
        (False, lambda: _minus(rng.randint(5, 19), rng.randint(1, 5))),
        (True, lambda: _op(rng.randint(12, 89), "+", rng.randint(12, 89))),
        (True, lambda: _op(rng.randint(11, 30), "times", rng.randint(3, 9))),
        (True, lambda: _minus(rng.randint(40, 99), rng.randint(11, 39))),
    ]
    for i in range(420):
        hard, make = kinds[i % len(kinds)]
        text, answer = make()
        yield item(f"arith-{i:03d}", text, hard, "arithmetic", str(answer), "numeric", ROOM)


def _op(a: int, word: str, b: int) -> tuple[str, int]:
    return f"What is {a} {word} {b}?", a + b if word == "+" else a * b


def _minus(a: int, b: int) -> tuple[str, int]:
    return f"What is {a} minus {b}?", a - b


def counting(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(240):
        if i % 3 == 0:
            word = rng.choice(WORDS_SHORT)
            yield item(
                f"count-{i:03d}",
                f"How many letters are in the word {word}?",
                False,
                "counting",
                str(len(word)),
                "numeric",
                ROOM,
            )
        elif i % 3 == 1:
            word = rng.choice(WORDS_LONG)
            yield item(
                f"count-{i:03d}",
                f"How many letters are in the word {word}?",
                True,
                "counting",
                str(len(word)),
                "numeric",
                ROOM,
            )
        else:
            word = rng.choice(WORDS_LONG)
            letter = rng.choice(sorted(set(word)))
            yield item(
                f"count-{i:03d}",
                f"How many times does the letter {letter} appear in the word {word}?",
                True,
                "counting",
                str(word.count(letter)),
                "numeric",
                ROOM,
            )


def comparisons(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(240):
        hard = i % 2 == 1
        if hard:  # three digits, the same first digit
            a = rng.randint(100, 999)
            b = a // 100 * 100 + rng.randint(0, 99)
        else:
            a, b = rng.sample(range(1, 50), 2)
        if a == b:
            b += 1
        word = rng.choice(("larger", "smaller"))
        answer = max(a, b) if word == "larger" else min(a, b)
        yield item(
            f"compare-{i:03d}",
            f"Which number is {word}, {a} or {b}? Answer with the number.",
            hard,
            "comparisons",
            str(answer),
            "numeric",
            SHORT,
        )


def conversions(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(200):
        hard = i % 2 == 1
        small, big, factor = rng.choice(CONVERSIONS_HARD if hard else CONVERSIONS_COMMON)
        n = rng.randint(2, 9)
        yield item(
            f"convert-{i:03d}",
            f"How many {small} are in {n} {big}?",
            hard,
            "conversions",
            str(n * factor),
            "numeric",
            ROOM,
        )


def sequences(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(200):
        hard = i % 2 == 1
        if hard and i % 4 == 3:  # doubling
            start = rng.randint(1, 5)
            terms = [start * 2**k for k in range(4)]
            nxt = terms[-1] * 2
        else:
            start = rng.randint(1, 20)
            step = rng.randint(6, 15) if hard else rng.randint(1, 5)
            terms = [start + step * k for k in range(4)]
            nxt = terms[-1] + step
        shown = ", ".join(map(str, terms))
        yield item(
            f"sequence-{i:03d}",
            f"What number comes next: {shown}?",
            hard,
            "sequences",
            str(nxt),
            "numeric",
            SHORT,
        )


def calendar(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(150):
        hard = i % 2 == 1
        names = DAYS if i % 4 < 2 else MONTHS
        kind = "day" if names is DAYS else "month"
        k = rng.randrange(len(names))
        ahead = rng.randint(2, 4) if hard else 1
        answer = names[(k + ahead) % len(names)]
        text = (
            f"What {kind} comes after {names[k]}?"
            if ahead == 1
            else f"Which {kind} is {NUMBER_WORDS[ahead]} {kind}s after {names[k]}?"
        )
        yield item(f"calendar-{i:03d}", text, hard, "calendar", answer, "contains", SHORT)


def facts() -> Iterator[dict[str, Any]]:
    """The capitals and facts of `evalsets/real`, and its opposites, asked again."""
    for i, (q, a) in enumerate(FACTS_COMMON):
        yield item(f"fact-{i:03d}", q, False, "facts", a, "contains", SHORT)
    for i, (q, a) in enumerate(FACTS_HARD):
        yield item(f"fact-hard-{i:03d}", q, True, "facts", a, "contains", SHORT)
    for i, pair in enumerate(OPPOSITES_COMMON + OPPOSITES_HARD):
        word, opposite = pair.split()
        hard = i >= len(OPPOSITES_COMMON)
        q = f"What is the opposite of {word}?"
        yield item(f"opposite-{i:03d}", q, hard, "facts", opposite, "contains", SHORT)


def formats(rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(160):
        kind = i % 4
        if kind == 0:
            n = rng.randint(0, 10)
            text, ref, hard = f"Write the number {n} as a word.", NUMBER_WORDS[n], False
            scorer = "contains"
        elif kind == 1:
            word = rng.choice(WORDS_SHORT)
            text = f"Write the word {word} in capital letters and nothing else."
            ref, hard, scorer = rf"^\W*{word.upper()}\W*$", True, "regex"
        elif kind == 2:
            word = rng.choice(WORDS_SHORT)
            text, ref, hard = f"Write the word {word} backwards.", word[::-1], True
            scorer = "contains"
        else:
            word = rng.choice(WORDS_LONG)
            text = f"What is the first letter of the word {word}? Answer with the letter only."
            ref, hard, scorer = rf"(?i)^\W*{word[0]}\W*$", False, "regex"
        yield item(f"format-{i:03d}", text, hard, "formats", ref, scorer, SHORT)


FAMILIES: dict[str, Callable[[random.Random], Iterator[dict[str, Any]]]] = {
    "arithmetic": arithmetic,
    "counting": counting,
    "comparisons": comparisons,
    "conversions": conversions,
    "sequences": sequences,
    "calendar": calendar,
    "facts": lambda rng: facts(),
    "formats": formats,
}


def check(row: dict[str, Any]) -> None:
    """Recompute the reference from the question alone, for the families whose answer is
    arithmetic on the numbers asked about (the rest are looked up from the tables above)."""
    text = row["messages"][0]["content"]
    numbers = [int(w.strip("?,.")) for w in text.split() if w.strip("?,.").isdigit()]
    tag = row["tags"][0]
    expected: int | None = None
    if tag == "arithmetic":
        a, b = numbers
        expected = a + b if "+" in text else a * b if "times" in text else a - b
    elif tag == "comparisons":
        expected = max(numbers) if "larger" in text else min(numbers)
    elif tag == "sequences":
        steps = {b - a for a, b in itertools.pairwise(numbers)}
        ratios = {b / a for a, b in itertools.pairwise(numbers)}
        expected = numbers[-1] + steps.pop() if len(steps) == 1 else int(numbers[-1] * ratios.pop())
    elif tag == "counting":
        word = text.rstrip("?").split()[-1]
        expected = word.count(text.split()[6]) if "times" in text else len(word)
    elif tag == "conversions":
        small, big = text.split()[2], text.rstrip("?").split()[-1]
        factor = {(s, b): f for s, b, f in CONVERSIONS_COMMON + CONVERSIONS_HARD}[(small, big)]
        expected = numbers[0] * factor
    if expected is not None and str(expected) != row["reference"]:
        raise ValueError(f"{row['id']}: reference {row['reference']} is not {expected}")


def build(out: Path = OUT) -> dict[str, int]:
    rng = random.Random(SEED)
    counts = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, family in FAMILIES.items():
        rows = list(family(rng))
        for row in rows:
            check(row)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8")
        counts[name] = len(rows)
    return counts


if __name__ == "__main__":
    counts = build()
    print(counts, sum(counts.values()))
