"""How the report shows a metric value (percentages, points, numbers) and the columns of the
metrics table (report.html) and of summary.md's table: each metric declares what it shows
(`harness.analysis.metrics.Shown`: a header and a format named here), and each
format is a cell function here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.analysis.metrics import MEANING, METRICS, Shown
from harness.records import CandidateMetrics, Interval
from harness.records.errors import HarnessError


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


# A format: the metric's name and its values -> the cell.
Format = Callable[[str, CandidateMetrics], Cell]


def _accuracies(name: str, m: CandidateMetrics) -> Cell:
    v = m[name]
    if not isinstance(v, Interval):
        return Cell("n/a")
    return Cell(f"{pct(v.baseline)} → {pct(v.candidate)}")


def _drop(name: str, m: CandidateMetrics) -> Cell:
    v = m[name]
    if not isinstance(v, Interval):
        return Cell("n/a")
    return Cell(pts(v.drop), f"{pts(v.ci_low)} to {pts(v.ci_high)}")


def _kld(name: str, m: CandidateMetrics) -> Cell:
    """A KLD cell; from a server's top-k log-probs it is a lower bound, and says so."""
    v = m[name]
    k = None if m.distribution is None else m.distribution.kld_top_k
    text = num(v if isinstance(v, (int, float)) else None)
    if k is None:
        return Cell(text)
    return Cell(f"≥ {text}", f"lower bound: top-{k} + tail")


def _flips(name: str, m: CandidateMetrics) -> Cell:
    """Regressions, the hard ones in parentheses."""
    if m[name] is None:
        return Cell("n/a")
    return Cell(f"{m[name]} ({m['hard_regressions']})")


def _meaning(name: str, m: CandidateMetrics) -> Cell:
    """Reference-free items by how their meaning compared."""
    if not m[name]:
        return Cell("n/a")
    return Cell(" / ".join(str(m[f"free_{o.value}"]) for o in MEANING))


def _plain(fmt: Callable[[float | None], str]) -> Format:
    def cell(name: str, m: CandidateMetrics) -> Cell:
        v = m[name]
        return Cell(fmt(None if isinstance(v, Interval) else v))

    return cell


FORMATS: dict[str, Format] = {
    "pct": _plain(pct),
    "pts": _plain(pts),
    "num": _plain(num),
    "num4": _plain(lambda v: num(v, 4)),
    "count": lambda name, m: Cell("n/a" if m[name] is None else str(m[name])),
    "accuracies": _accuracies,
    "drop": _drop,
    "kld": _kld,
    "flips": _flips,
    "meaning": _meaning,
}


class UnknownFormat(HarnessError):
    """A metric shows a column in a format no one declared."""


def column(metric: str, shown: Shown) -> Column:
    """The column a metric's `Shown` declares."""
    fmt = FORMATS.get(shown.format)
    if fmt is None:
        raise UnknownFormat(
            f"metric {metric!r}: column {shown.header!r} has format {shown.format!r}, not one "
            f"of {', '.join(FORMATS)}"
        )
    return Column(shown.header, lambda m: fmt(metric, m), shown.summary)


# Every metric's columns in declaration order; the unscorable count closes the table, after
# the distribution columns.
TABLE_COLUMNS: tuple[Column, ...] = (
    *(column(m.name, s) for m in METRICS for s in m.shown),
    column("unscorable", Shown("unscorable", "count")),
)
SUMMARY_COLUMNS = tuple(c for c in TABLE_COLUMNS if c.summary_header)
