"""A sequential run's pool: every item of the eval sets in one seeded, uniformly random order.

Uniform is what the without-replacement confidence sequence needs (every prefix is a simple
random sample of the pool, each next item equally likely to be any of those left:
`harness.analysis.betting`). An order interleaved by stratum would keep each prefix's mix
exactly but is not covered by that sequence; a uniform order keeps it in expectation, and
docs/metrics.md gives how far a prefix's hard share strays on the real pool.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from harness.records import EvalItem


def pool_order(items: Sequence[EvalItem], seed: int) -> list[EvalItem]:
    """The pool in the order a sequential run draws it."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out
