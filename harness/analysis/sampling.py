"""Drawing a weighted eval set from a traffic pool: the baseline's hardest items oversampled,
every item weighted so that the harness's weighted figures still speak for the whole pool.

The pool (M items) is cut into two strata by one signal of the baseline's own uncertainty
(`harness.run.mining`): `hard`, the `hard_share` of the pool where the baseline was least sure,
and `rest`. From each stratum h of M_h items, n_h are drawn by simple random sampling without
replacement (`hard_fraction` of the sample from `hard`, as far as the strata allow, and at
least one from each non-empty stratum so that no item has a zero chance of being drawn). An
item of stratum h is drawn with probability pi_h = n_h / M_h and gets the weight b_i / pi_h,
b_i its weight in the pool (1, or how often the request was logged).

With those weights the harness's weighted mean of any per-item figure y (accuracy, a flip, a
diverged answer), sum(w_i y_i) / sum(w_i) over the sample, is the Horvitz-Thompson ratio
(Hajek) estimator of the pool's mean sum(b_i y_i) / sum(b_i): with every b_i = 1 the
denominator is M for every draw and the estimator is exactly unbiased (tests/test_sampling.py
checks both by hand on a small pool and by simulation); with unequal b_i it is the ratio of
two unbiased totals, consistent and nearly unbiased.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from harness.records.errors import HarnessError

# The signal a stratum is cut on, and which end of it is hard.
Signal = Literal["min_margin", "mean_margin", "mean_entropy"]
HARD_IS_LOW = {"min_margin": True, "mean_margin": True, "mean_entropy": False}
HARD, REST = "hard", "rest"


class SamplingError(HarnessError):
    """A draw that cannot be made as asked (a pool too small for the sample): exit 2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stratum:
    name: str
    pool: int  # M_h
    drawn: int  # n_h

    @property
    def inclusion(self) -> float:
        """pi_h: the chance that one item of this stratum is drawn."""
        return self.drawn / self.pool if self.pool else 0.0


def check_pool(rows: Mapping[str, Mapping[str, object]], size: int, calibration: int) -> None:
    """What the draw needs of the pool, checked before any model mines it: enough items for
    the sample and the calibration set, and pool weights whose inverse-probability weights
    stay finite (an item's weight is divided by an inclusion of at least 1 / the pool)."""
    if size + calibration > len(rows):
        raise SamplingError(
            f"a sample of {size:,} items and {calibration:,} calibration items from a pool of "
            f"{len(rows):,}"
        )
    for item, row in rows.items():
        w = row.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise SamplingError(f"pool item {item!r}: weight {w!r} is not a number")
        if not math.isfinite(float(w) * len(rows)) or w <= 0:
            raise SamplingError(
                f"pool item {item!r}: weight {w!r} would not stay a finite number once divided "
                f"by its inclusion probability (at least 1 / {len(rows):,})"
            )


def hard_items(values: Mapping[str, float | None], signal: Signal, hard_share: float) -> set[str]:
    """The ids of the `hard_share` of the pool where the baseline was least sure (ties at the
    cut broken by id, so the cut is the same on every machine); items with no value (nothing
    generated) are never hard."""
    known = [(v, i) for i, v in values.items() if v is not None]
    low = HARD_IS_LOW[signal]
    known.sort(key=lambda t: (t[0] if low else -t[0], t[1]))
    count = min(len(known), round(hard_share * len(values)))
    return {i for _, i in known[:count]}


def allocate(sizes: Mapping[str, int], size: int, hard_fraction: float) -> dict[str, int]:
    """n_h for the strata `hard` and `rest` of `sizes` (M_h): `hard_fraction` of `size` from
    `hard`, the rest from `rest`; a stratum too small gives what it has and the other makes up
    the difference; every non-empty stratum gives at least one."""
    total = sum(sizes.values())
    if size > total:
        raise SamplingError(f"a sample of {size:,} items from a pool of {total:,}")
    strata = [h for h in (HARD, REST) if sizes.get(h, 0) > 0]
    if size < len(strata):
        raise SamplingError(f"a sample of {size} cannot hold one item of each stratum")
    want = {HARD: round(size * hard_fraction), REST: 0}
    want[REST] = size - want[HARD]
    drawn = {h: max(1, min(want[h], sizes[h])) for h in strata}
    for h in strata:  # the shortfall of one stratum is made up by the other
        short = size - sum(drawn.values())
        if short > 0:
            drawn[h] = min(sizes[h], drawn[h] + short)
        elif short < 0:
            drawn[h] = max(1, drawn[h] + short)
    return drawn


@dataclass(frozen=True, slots=True, kw_only=True)
class Draw:
    strata: tuple[Stratum, ...]
    stratum_of: dict[str, str]  # item id -> stratum name, every item of the pool
    chosen: tuple[str, ...]  # the sample's ids, in the pool's order
    calibration: tuple[str, ...]  # drawn from the items not chosen

    def inclusion(self, item: str) -> float:
        name = self.stratum_of[item]
        return next(s.inclusion for s in self.strata if s.name == name)


def draw(
    ids: Sequence[str],
    hard: set[str],
    size: int,
    hard_fraction: float,
    seed: int,
    calibration: int = 0,
) -> Draw:
    """The stratified sample of `size` items of the pool `ids`, and `calibration` items drawn
    uniformly from the rest of the pool (disjoint from the sample)."""
    groups = {
        HARD: sorted(i for i in ids if i in hard),
        REST: sorted(i for i in ids if i not in hard),
    }
    drawn = allocate({h: len(g) for h, g in groups.items()}, size, hard_fraction)
    rng = random.Random(seed)
    picked: set[str] = set()
    for h in (HARD, REST):
        picked.update(rng.sample(groups[h], drawn.get(h, 0)))
    left = sorted(i for i in ids if i not in picked)
    if calibration > len(left):
        raise SamplingError(
            f"{calibration:,} calibration items from the {len(left):,} the sample leaves"
        )
    calib = set(rng.sample(left, calibration))
    strata = tuple(
        Stratum(name=h, pool=len(groups[h]), drawn=drawn.get(h, 0)) for h in (HARD, REST)
    )
    return Draw(
        strata=strata,
        stratum_of={i: HARD if i in hard else REST for i in ids},
        chosen=tuple(i for i in ids if i in picked),
        calibration=tuple(i for i in ids if i in calib),
    )


def weight(base: float, inclusion: float) -> float:
    """An item's weight in the sample: its pool weight over its inclusion probability."""
    if not 0 < inclusion <= 1 or not math.isfinite(base) or base <= 0:
        raise SamplingError(f"weight of an item with pool weight {base}, inclusion {inclusion}")
    return base / inclusion


def estimate(values: Sequence[float], weights: Sequence[float]) -> float:
    """The weighted mean sum(w y) / sum(w): the harness's weighted figures, here for tests
    and the mining measurement."""
    total = sum(weights)
    return sum(w * y for w, y in zip(weights, values, strict=True)) / total
