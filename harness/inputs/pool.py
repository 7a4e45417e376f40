"""A sequential run's pool: every item of the eval sets in one seeded order whose every prefix
keeps the pool's mix.

Items fall into strata by difficulty and tags; each stratum is shuffled with the seed, and the
strata are interleaved so that after k items each stratum has supplied as close to its share
of k as whole items allow (the stratum furthest below its share goes next). A prefix of any
length is then a stratified sample of the pool, which is what lets a run stop early and still
speak for the whole pool.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from harness.records import EvalItem


def stratum(item: EvalItem) -> tuple[str, tuple[str, ...]]:
    return item.difficulty.value, tuple(sorted(item.tags))


def stratified_order(items: Sequence[EvalItem], seed: int) -> list[EvalItem]:
    """The pool in the order a sequential run draws it."""
    groups: dict[tuple[str, tuple[str, ...]], list[EvalItem]] = {}
    for item in items:
        groups.setdefault(stratum(item), []).append(item)
    rng = random.Random(seed)
    keys = sorted(groups)
    for key in keys:
        rng.shuffle(groups[key])
    total = len(items)
    taken = dict.fromkeys(keys, 0)
    out: list[EvalItem] = []
    for k in range(1, total + 1):
        # the stratum whose count falls furthest below its share of the first k items
        # (ties: the larger stratum, then the first in sorted order)
        key = max(
            (g for g in keys if taken[g] < len(groups[g])),
            key=lambda g: (k * len(groups[g]) / total - taken[g], len(groups[g])),
        )
        out.append(groups[key][taken[key]])
        taken[key] += 1
    return out
