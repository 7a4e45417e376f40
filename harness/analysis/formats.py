"""How the report shows a metric value: percentages, points, numbers, and the columns of the
metrics table (report.html) and of summary.md's table, each a header and a cell function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.records import CandidateMetrics, Interval


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} pts"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    ci: str | None = None  # "low to high", shown smaller (in parentheses)

    def plain(self) -> str:
        return self.text if self.ci is None else f"{self.text} ({self.ci})"


@dataclass(frozen=True, slots=True)
class Column:
    header: str  # in report.html's metrics table
    cell: Callable[[CandidateMetrics], Cell]
    summary_header: str | None = None  # also a column of summary.md's table, so headed


def interval_columns(name: str, label: str, drop_header: str) -> tuple[Column, ...]:
    """Two columns of a paired interval: both accuracies, and the drop with its interval."""

    def accuracy(m: CandidateMetrics) -> Cell:
        v = m[name]
        if not isinstance(v, Interval):
            return Cell("n/a")
        return Cell(f"{pct(v.baseline)} → {pct(v.candidate)}")

    def drop(m: CandidateMetrics) -> Cell:
        v = m[name]
        if not isinstance(v, Interval):
            return Cell("n/a")
        return Cell(pts(v.drop), f"{pts(v.ci_low)} to {pts(v.ci_high)}")

    return (
        Column(f"{label} baseline → candidate", accuracy),
        Column(drop_header, drop, f"{label} drop (interval)"),
    )


def column(header: str, name: str, fmt: Callable[[Any], str], summary: bool = False) -> Column:
    return Column(header, lambda m: Cell(fmt(m[name])), header if summary else None)
