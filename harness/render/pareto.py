"""The ladder's charts: geometry of inline SVG scatter plots (the template draws them).

x: bits per weight (or MB on disk when the baseline's parameter count is unknown), lighter
to the left; y: the weighted-accuracy drop in points with its interval as a bar, or the mean
KLD on a log scale. Each point links to its rung's review queue and carries its numbers in
data attributes, so a test can read them back against results.json."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from harness.analysis.ladder import slice_drop
from harness.records import Interval
from harness.records.ladder import Ladder, Rung

W, H = 560.0, 250.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 16.0, 14.0, 40.0
MAX_SLICE_CHARTS = 12


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    x: float
    y: float
    y_low: float | None  # the interval's ends, in pixels (None: no bar)
    y_high: float | None
    css: str  # "pass" | "fail", plus " pareto" on the frontier
    label_x: float  # the name beside the point: to its left near the right edge
    anchor: str
    href: str
    title: str
    data: dict[str, str]  # the numbers drawn, for a reader (and the browser test)


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    text: str


@dataclass(frozen=True, slots=True)
class Scatter:
    title: str
    kind: str  # "drop" | "kld": what y shows
    slice: str
    width: float
    height: float
    points: tuple[Point, ...]
    path: str  # the polyline through the rungs, heaviest first
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_label: str
    y_label: str
    limit_y: float | None  # the gate's limit, as a horizontal line
    cliffs: tuple[tuple[float, float], ...]  # where a cliff lands (x, y)


def _x_of(r: Rung) -> float | None:
    if r.bits_per_weight is not None:
        return r.bits_per_weight
    return None if r.size_bytes is None else r.size_bytes / 1e6


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = hi - lo or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _frame(xs: Sequence[float]) -> tuple[Callable[[float], float], tuple[Tick, ...]]:
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 0.5)
    sx = _scale(lo - pad, hi + pad, LEFT, W - RIGHT)
    return sx, tuple(Tick(sx(t), f"{t:g}") for t in _ticks(lo - pad, hi + pad))


def drop_chart(ladder: Ladder, slice_name: str, limit: float | None, title: str) -> Scatter | None:
    """Weighted drop (points) with its interval against bits per weight, for one slice."""
    rows: list[tuple[Rung, float, Interval]] = []
    for r in ladder.rungs:
        x, d = _x_of(r), slice_drop(r, slice_name)
        if x is not None and d is not None:
            rows.append((r, x, d))
    if not rows:
        return None
    sx, x_ticks = _frame([x for _, x, _ in rows])
    ys = [100 * v for _, _, d in rows for v in (d.ci_low, d.ci_high, d.drop)]
    ys += [0.0] + ([100 * limit] if limit is not None else [])
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.08 or 1.0
    sy = _scale(lo - pad, hi + pad, H - BOTTOM, TOP)
    points = []
    for r, x, d in rows:
        points.append(
            _point(
                r,
                sx(x),
                sy(100 * d.drop),
                sy(100 * d.ci_low),
                sy(100 * d.ci_high),
                x,
                _drop_data(d),
                f"drop {100 * d.drop:+.1f} pts ({100 * d.ci_low:+.1f} to {100 * d.ci_high:+.1f})",
            )
        )
    cliffs = tuple(
        (p.x, p.y)
        for p in points
        for c in ladder.cliffs
        if c.slice == slice_name and c.lighter == p.name
    )
    return Scatter(
        title=title,
        kind="drop",
        slice=slice_name,
        width=W,
        height=H,
        points=tuple(points),
        path=_path(points),
        x_ticks=x_ticks,
        y_ticks=tuple(Tick(sy(t), f"{t:g}") for t in _ticks(lo - pad, hi + pad)),
        x_label=_x_label(ladder),
        y_label="drop (points)",
        limit_y=None if limit is None else sy(100 * limit),
        cliffs=cliffs,
    )


def kld_chart(ladder: Ladder) -> Scatter | None:
    """Mean KLD (log scale) against bits per weight."""
    rows: list[tuple[Rung, float]] = []
    for r in ladder.rungs:
        x = _x_of(r)
        if x is not None and r.mean_kld is not None and r.mean_kld > 0:
            rows.append((r, x))
    if not rows:
        return None
    sx, x_ticks = _frame([x for _, x in rows])
    logs = [math.log10(r.mean_kld or 1.0) for r, _ in rows]
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    hi = hi if hi > lo else lo + 1
    sy = _scale(lo, hi, H - BOTTOM, TOP)
    points = [
        _point(
            r,
            sx(x),
            sy(math.log10(r.mean_kld or 1.0)),
            None,
            None,
            x,
            {"kld": _fmt(r.mean_kld or 0.0)},
            f"mean KLD {'≥ ' if r.kld_top_k else ''}{r.mean_kld:.3g}",
        )
        for r, x in rows
    ]
    bounded = any(r.kld_top_k for r, _ in rows)
    return Scatter(
        title="Mean KLD against size",
        kind="kld",
        slice="all",
        width=W,
        height=H,
        points=tuple(points),
        path=_path(points),
        x_ticks=x_ticks,
        y_ticks=tuple(Tick(sy(e), f"1e{e}") for e in range(lo, hi + 1)),
        x_label=_x_label(ladder),
        y_label="mean KLD (nats, log" + ("; top-k: lower bounds)" if bounded else ")"),
        limit_y=None,
        cliffs=(),
    )


def _drop_data(d: Interval) -> dict[str, str]:
    return {"drop": _fmt(d.drop), "ci-low": _fmt(d.ci_low), "ci-high": _fmt(d.ci_high)}


def _point(
    r: Rung,
    x: float,
    y: float,
    y_low: float | None,
    y_high: float | None,
    x_value: float,
    data: dict[str, str],
    what: str,
) -> Point:
    unit = "bits/weight" if r.bits_per_weight is not None else "MB"
    right = x > W * 0.7
    return Point(
        name=r.name,
        x=x,
        y=y,
        y_low=y_low,
        y_high=y_high,
        css=r.verdict + (" pareto" if r.pareto else ""),
        label_x=x - 8 if right else x + 8,
        anchor="end" if right else "start",
        href="#cand=" + quote(r.name, safe=""),
        title=f"{r.name} ({r.recipe}): {x_value:.2f} {unit}, {what}, {r.verdict.upper()}",
        data={"rung": r.name, "x": _fmt(x_value), **data},
    )


def _path(points: Sequence[Point]) -> str:
    return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)


def _x_label(ladder: Ladder) -> str:
    known = any(r.bits_per_weight is not None for r in ladder.rungs)
    return "bits per weight (size on disk x 8 / parameters)" if known else "size on disk (MB)"


def ladder_charts(ladder: Ladder, limit: float | None) -> list[Scatter]:
    """The Pareto charts (drop, KLD), then the drop per slice (hard first, then tags)."""
    charts = [
        drop_chart(ladder, "all", limit, "Weighted accuracy drop against size"),
        kld_chart(ladder),
    ]
    names = dict.fromkeys(s.slice for r in ladder.rungs for s in r.slices if s.slice != "all")
    ordered = sorted(names, key=lambda s: (not s.startswith("difficulty="), s))
    for name in ordered[:MAX_SLICE_CHARTS]:
        charts.append(drop_chart(ladder, name, None, f"Drop on {name}"))
    return [c for c in charts if c is not None]
