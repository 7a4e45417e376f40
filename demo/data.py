"""Deterministic data splits of the demo: eval items, training stream, calibration prompts.

The eval items are drawn first, from their own seeds; the training stream skips every eval
prompt of the computed families (and a held-out set of curriculum-level hard items), so the
demo eval set measures generalisation, not recall of training lines. Recall is the exception
by nature: its eval items quiz the fixed fact table, which is exactly what training taught
(common facts often, rare facts seldom).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from demo.tasks import (
    COMPUTED,
    Example,
    Family,
    Level,
    fact_table,
    make_recall_sampler,
    recall_example,
)

EVAL_SEED = 1234
EDGE_SEED = 4321
TRAIN_SEED = 5678
TRAFFIC_SEED = 91011
GENERIC_SEED = 121314
EVAL_COMMON_PER_FAMILY = 55
EVAL_HARD_PER_FAMILY = 45
# Share of hard examples in the training stream of the computed families.
TRAIN_HARD_SHARE = 0.3


def _unique(
    rng: random.Random, family: Family, level: Level, n: int, seen: set[str]
) -> list[Example]:
    out: list[Example] = []
    make = COMPUTED[family]
    while len(out) < n:
        ex = make(rng, level)
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
    return out


def _held_out() -> tuple[list[Example], list[Example]]:
    """(eval items, curriculum-level hard items held out of training but not evaluated).

    Draw order is part of the data: the common items and the held-out HARD items come from
    one generator in turn, family by family; the EDGE items (the hard eval items) from their
    own, so adding or changing them never moves an earlier draw."""
    rng = random.Random(EVAL_SEED)
    edge_rng = random.Random(EDGE_SEED)
    seen: set[str] = set()
    common: dict[Family, list[Example]] = {}
    held: list[Example] = []
    for family in COMPUTED:
        common[family] = _unique(rng, family, Level.COMMON, EVAL_COMMON_PER_FAMILY, seen)
        held += _unique(rng, family, Level.HARD, EVAL_HARD_PER_FAMILY, seen)
    out: list[Example] = []
    for family in COMPUTED:
        out += common[family]
        out += _unique(edge_rng, family, Level.EDGE, EVAL_HARD_PER_FAMILY, seen)
    facts = list(fact_table())
    frequent = [f for f in facts if f.tier == 0]
    rare = [f for f in facts if f.tier > 0]
    out += [recall_example(f) for f in rng.sample(frequent, EVAL_COMMON_PER_FAMILY)]
    # Spread the hard recall items evenly over the rarity tiers.
    for tier in range(1, 5):
        tier_facts = [f for f in rare if f.tier == tier]
        k = EVAL_HARD_PER_FAMILY // 4 + (1 if tier <= EVAL_HARD_PER_FAMILY % 4 else 0)
        out += [recall_example(f) for f in rng.sample(tier_facts, k)]
    return out, held


def eval_examples() -> list[Example]:
    """The demo eval items, family by family, common then hard: the EDGE level of each
    computed family, the rare facts for recall."""
    return _held_out()[0]


def excluded_from_training() -> set[str]:
    """Prompts the training stream never yields: every eval prompt of a computed family
    (recall quizzes the fact table, which training must teach) and the held-out HARD items."""
    evals, held = _held_out()
    return {ex.prompt for ex in [*evals, *held] if ex.family is not Family.RECALL}


def training_level(rng: random.Random) -> Level:
    return Level.HARD if rng.random() < TRAIN_HARD_SHARE else Level.COMMON


def training_stream(seed: int = TRAIN_SEED) -> Iterator[Example]:
    """An endless, seeded stream of training examples that never repeats an eval prompt
    of a computed family."""
    rng = random.Random(seed)
    excluded = excluded_from_training()
    recall = make_recall_sampler()
    families = list(Family)
    while True:
        family = rng.choice(families)
        if family is Family.RECALL:
            yield recall(rng)
            continue
        ex = COMPUTED[family](rng, training_level(rng))
        if ex.prompt not in excluded:
            yield ex


def traffic_prompts(n: int) -> list[str]:
    """Calibration prompts that look like the eval workload (but are not eval items)."""
    rng = random.Random(TRAFFIC_SEED)
    excluded = {ex.prompt for ex in eval_examples()}
    recall = make_recall_sampler()
    out: list[str] = []
    seen: set[str] = set()
    families = list(Family)
    while len(out) < n:
        family = families[len(out) % len(families)]
        ex = recall(rng) if family is Family.RECALL else COMPUTED[family](rng, training_level(rng))
        if ex.text not in seen and ex.prompt not in excluded:
            seen.add(ex.text)
            out.append(ex.text)
    return out


_SUBJECTS = (
    "The old harbour town",
    "My grandmother",
    "A quiet librarian",
    "The committee",
    "Every spring the river",
    "Our neighbour's dog",
    "The night train to the coast",
    "A young engineer",
    "The village bakery",
    "Most of the students",
    "The museum guide",
    "An elderly fisherman",
    "The small theatre",
    "Her younger brother",
    "The city council",
)
_VERBS = (
    "woke slowly under",
    "walked along",
    "wrote a long letter about",
    "argued for hours over",
    "spent the afternoon near",
    "never quite forgot",
    "painted a picture of",
    "talked about",
    "carefully repaired",
    "laughed at",
    "waited patiently beside",
    "read aloud from",
)
_OBJECTS = (
    "a grey and heavy sky",
    "the edge of the forest",
    "the broken garden gate",
    "an unfinished novel",
    "the price of bread",
    "the festival in July",
    "a map of the islands",
    "the lighthouse on the hill",
    "a basket of green apples",
    "the rules of the old game",
    "the empty railway station",
    "a song from their childhood",
)
_CODAS = (
    "",
    " before the rain came.",
    ", and nobody minded.",
    " while the kettle boiled.",
    "; it was, everyone agreed, a good day.",
    " as the church bells rang twice.",
    ". Later, they went home.",
    " until the lights went out.",
)


def generic_prompts(n: int) -> list[str]:
    """Calibration prompts of ordinary English prose, nothing like the eval workload."""
    rng = random.Random(GENERIC_SEED)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        sentences = [
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            f"{rng.choice(_CODAS) or '.'}"
            for _ in range(rng.randint(1, 3))
        ]
        text = " ".join(sentences)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
