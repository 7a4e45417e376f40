"""Synthetic task families of the demo model, at three levels of difficulty.

Every family is a pure function of a `random.Random` and a `Level`, so a fixed seed gives
the same examples on every machine.

- COMMON: the bulk of training and the common eval items.
- HARD: the long tail of the training curriculum (longer inputs, constructed carry chains,
  rarely shown facts), 30% of the computed-family training examples.
- EDGE: the hard eval items, at and just past the edge of what training covered: the longest
  lengths training showed and one step beyond, additions whose long carry chains come from
  naturally drawn operands rather than the curriculum's construction, facts shown rarely.
  The model is partly right there and with low margins: where quantization flips answers
  first. (For recall, EDGE and HARD are the same rare facts.)

| family  | COMMON                | HARD (training)                | EDGE (hard eval items)       |
|---------|-----------------------|--------------------------------|------------------------------|
| add     | 1-3 digit operands    | 4-5 digits, constructed chain  | 4-5 digits at random, chain  |
|         |                       | of >= 3 carries                | of >= 3 carries              |
| reverse | 3-7 letters           | 9-12 letters                   | 12-13 letters                |
| sort    | 3-6 distinct letters  | 8-11 letters, repeats allowed  | 11-12 letters                |
| count   | 4-10 letters from a-e | 14-22 letters                  | 23-25 letters                |
| recall  | facts shown often     | facts shown rarely (4 tiers)   | the same rare facts          |
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Family(Enum):
    ADD = "add"
    REVERSE = "reverse"
    SORT = "sort"
    COUNT = "count"
    RECALL = "recall"


class Level(Enum):
    COMMON = "common"
    HARD = "hard"  # the training curriculum's long tail
    EDGE = "edge"  # the hard eval items

    @property
    def hard(self) -> bool:
        return self is not Level.COMMON


@dataclass(frozen=True, slots=True)
class Example:
    family: Family
    hard: bool
    prompt: str
    answer: str
    tags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return self.prompt + self.answer


LETTERS = string.ascii_lowercase
COUNT_ALPHABET = "abcde"
# Input lengths per level, inclusive.
LENGTHS = {
    Family.REVERSE: {Level.COMMON: (3, 7), Level.HARD: (9, 12), Level.EDGE: (12, 13)},
    Family.SORT: {Level.COMMON: (3, 6), Level.HARD: (8, 11), Level.EDGE: (11, 12)},
    Family.COUNT: {Level.COMMON: (4, 10), Level.HARD: (14, 22), Level.EDGE: (23, 25)},
}


# --- add ---------------------------------------------------------------------------------


def _number(rng: random.Random, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def carry_chain(a: int, b: int) -> int:
    """Length of the longest run of consecutive digit positions that produce a carry."""
    longest = run = carry = 0
    while a or b:
        total = a % 10 + b % 10 + carry
        carry = 1 if total >= 10 else 0
        run = run + 1 if carry else 0
        longest = max(longest, run)
        a, b = a // 10, b // 10
    return longest


def _constructed_chain(rng: random.Random) -> tuple[int, int]:
    """The curriculum's long carry chains: one position that overflows, then positions
    that sum to exactly 9."""
    digits = rng.choice((4, 5))
    while True:
        length = rng.randint(3, digits)
        start = rng.randint(0, digits - length)
        da = [rng.randint(0, 9) for _ in range(digits)]
        db = [rng.randint(0, 9) for _ in range(digits)]
        da[start] = rng.randint(1, 9)
        db[start] = rng.randint(10 - da[start], 9)
        for pos in range(start + 1, start + length):
            da[pos] = rng.randint(0, 9)
            db[pos] = 9 - da[pos]
        a = int("".join(str(d) for d in reversed(da)))
        b = int("".join(str(d) for d in reversed(db)))
        if a >= 10 ** (digits - 1) and b >= 10 ** (digits - 1) and carry_chain(a, b) >= 3:
            return a, b


def _natural_chain(rng: random.Random) -> tuple[int, int]:
    """Operands drawn uniformly at random (4-5 digits), kept when they carry 3+ times in a row."""
    digits = rng.choice((4, 5))
    while True:
        a, b = _number(rng, digits), _number(rng, digits)
        if carry_chain(a, b) >= 3:
            return a, b


def make_add(rng: random.Random, level: Level) -> Example:
    if level is Level.COMMON:
        a, b = _number(rng, rng.randint(1, 3)), _number(rng, rng.randint(1, 3))
        tags: tuple[str, ...] = ("add",)
    else:
        a, b = _constructed_chain(rng) if level is Level.HARD else _natural_chain(rng)
        tags = ("add", "carry-chain")
    return Example(Family.ADD, level.hard, f"add {a}+{b}=", str(a + b), tags)


# --- reverse / sort / count ----------------------------------------------------------------


def _length(rng: random.Random, family: Family, level: Level) -> int:
    return rng.randint(*LENGTHS[family][level])


def make_reverse(rng: random.Random, level: Level) -> Example:
    word = "".join(rng.choice(LETTERS) for _ in range(_length(rng, Family.REVERSE, level)))
    tags = ("reverse", "long") if level.hard else ("reverse",)
    return Example(Family.REVERSE, level.hard, f"reverse {word}=", word[::-1], tags)


def make_sort(rng: random.Random, level: Level) -> Example:
    n = _length(rng, Family.SORT, level)
    if level.hard:
        word = "".join(rng.choice(LETTERS) for _ in range(n))
    else:
        word = "".join(rng.sample(LETTERS, n))
    tags = ("sort", "long") if level.hard else ("sort",)
    return Example(Family.SORT, level.hard, f"sort {word}=", "".join(sorted(word)), tags)


def make_count(rng: random.Random, level: Level) -> Example:
    n = _length(rng, Family.COUNT, level)
    word = "".join(rng.choice(COUNT_ALPHABET) for _ in range(n))
    target = rng.choice(COUNT_ALPHABET)
    tags = ("count", "long") if level.hard else ("count",)
    prompt = f"count {target} in {word}="
    return Example(Family.COUNT, level.hard, prompt, str(word.count(target)), tags)


# --- recall ------------------------------------------------------------------------------

COLORS = ("red", "blue", "green", "teal", "gold", "pink", "gray", "cyan", "plum", "navy")
CITIES = ("ostra", "velin", "marok", "quess", "dunby", "harlo", "tiven", "sorra", "kelpa", "brune")
RELATIONS = {"color": COLORS, "home": CITIES}
FACT_SEED = 20261127
N_ENTITIES = 120
N_COMMON_FACTS = 80
# Relative sampling weight of one fact per tier: common facts are seen ~50x more often than
# the rarest ones, so recall degrades gradually along the tail instead of all at once.
COMMON_FACT_WEIGHT = 1.0
RARE_TIER_WEIGHTS = (0.16, 0.08, 0.04, 0.02)


@dataclass(frozen=True, slots=True)
class Fact:
    entity: str
    relation: str
    value: str
    tier: int  # 0 = common; 1..4 = rarer and rarer

    @property
    def prompt(self) -> str:
        return f"{self.relation} of {self.entity}="


def _pseudo_word(rng: random.Random) -> str:
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 3)))


def fact_table() -> tuple[Fact, ...]:
    """The fixed fact table (its own seed, independent of any data split)."""
    rng = random.Random(FACT_SEED)
    entities: list[str] = []
    while len(entities) < N_ENTITIES:
        word = _pseudo_word(rng)
        if word not in entities:
            entities.append(word)
    pairs = [(e, rel) for e in entities for rel in RELATIONS]
    rng.shuffle(pairs)
    n_rare = len(pairs) - N_COMMON_FACTS
    facts = []
    for i, (entity, rel) in enumerate(pairs):
        tier = 0 if i < N_COMMON_FACTS else 1 + (i - N_COMMON_FACTS) * 4 // n_rare
        facts.append(Fact(entity, rel, rng.choice(RELATIONS[rel]), tier))
    return tuple(facts)


def fact_weight(fact: Fact) -> float:
    return COMMON_FACT_WEIGHT if fact.tier == 0 else RARE_TIER_WEIGHTS[fact.tier - 1]


def recall_example(fact: Fact) -> Example:
    hard = fact.tier > 0
    tags = ("recall", f"rare-tier-{fact.tier}") if hard else ("recall",)
    return Example(Family.RECALL, hard, fact.prompt, fact.value, tags)


def make_recall_sampler() -> Callable[[random.Random], Example]:
    """Training sampler: facts drawn with their tier weight (the long tail is rare)."""
    facts = fact_table()
    weights = [fact_weight(f) for f in facts]

    def sample(rng: random.Random) -> Example:
        return recall_example(rng.choices(facts, weights)[0])

    return sample


COMPUTED: dict[Family, Callable[[random.Random, Level], Example]] = {
    Family.ADD: make_add,
    Family.REVERSE: make_reverse,
    Family.SORT: make_sort,
    Family.COUNT: make_count,
}
