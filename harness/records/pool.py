"""What a betting test knows before any model runs: the range of the per-item values, and for
a sequential run the pool it draws from (run.json keeps it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Range:
    """The known range of the per-item values x (not of the data seen)."""

    low: float
    high: float


DROP = Range(-1.0, 1.0)  # baseline score minus candidate score
SHARE = Range(0.0, 1.0)  # 1 on a flagged item (a regression), else 0


@dataclass(frozen=True, slots=True)
class Pool:
    """A rule's slice of the pool: how many items, their total weight and largest weight
    (known before any model runs), and the range of the per-item value x."""

    size: int
    total_weight: float
    max_weight: float
    range: Range

    @property
    def y_low(self) -> float:
        return self.range.low * self.size * self.max_weight / self.total_weight

    @property
    def y_high(self) -> float:
        return self.range.high * self.size * self.max_weight / self.total_weight
