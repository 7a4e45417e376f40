"""report.html: jinja2 (autoescape, StrictUndefined, self-contained) over `Results`.

The view model lives here too: the JSON data island the page's script renders cards from
(each item's results.json row, serialized once, plus what only the page shows: word diffs,
per-token KLD and tokens), and the geometry of the inline SVG charts. The template turns
them into markup."""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from harness.analysis.metrics import KLD_EDGES
from harness.analysis.pairing import diff_ops
from harness.records import (
    CandidateMetrics,
    GgufSpec,
    Interval,
    PairedItem,
    QuantizeSpec,
    SliceRow,
)
from harness.records.codec import to_json
from harness.records.items import conversation_text
from harness.records.neutral import visible_bidi
from harness.records.results import CandidateInfo, CandidateResult, Results
from harness.render.formats import TABLE_COLUMNS, num, pct, pts
from harness.render.pareto import ladder_charts
from harness.render.verdicts import evidence_sentence, interval_used

TEMPLATES = Path(__file__).parent / "templates"

HIST_W, HIST_H, HIST_PAD = 640.0, 150.0, 24.0
CHART_W, ROW_H, LABEL_W = 640.0, 18.0, 170.0
MAX_SLICES = 24  # the charts show at most this many slices (difficulty first, then tags)


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "end"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: float
    height: float
    rects: tuple[Rect, ...]
    labels: tuple[Label, ...]
    legend: tuple[tuple[str, str], ...]  # (css class, text)


def kld_label(low: float, high: float) -> str:
    """A short bar label: the decade's lower edge (`<1e-06` for the first bar)."""
    if low == 0:
        return f"<{high:.0e}"
    return f"≥{low:.0e}" if math.isinf(high) else f"{low:.0e}"


def histogram(counts: list[int]) -> Chart:
    """Per-token KLD per decade; every bar carries its count, so the thin tail stays
    readable next to the near-zero bulk."""
    top = max(counts) or 1
    width = (HIST_W - 2 * HIST_PAD) / len(counts)
    rects, labels = [], []
    for i, n in enumerate(counts):
        h = (HIST_H - 2 * HIST_PAD) * n / top
        x = HIST_PAD + i * width + 2
        label = kld_label(KLD_EDGES[i], KLD_EDGES[i + 1])
        rects.append(
            Rect(x, HIST_H - HIST_PAD - h, width - 4, h, "bar", f"KLD {label}: {n} tokens")
        )
        labels.append(Label(x + (width - 4) / 2, HIST_H - HIST_PAD - h - 3, str(n), "middle"))
        labels.append(Label(x + (width - 4) / 2, HIST_H - HIST_PAD + 14, label, "middle"))
    labels.append(
        Label(HIST_W / 2, HIST_H + 22, "per-token KLD (nats), one bar per decade", "middle")
    )
    return Chart("Per-token KLD", HIST_W, HIST_H + 30, tuple(rects), tuple(labels), ())


def _rows(slices: tuple[SliceRow, ...]) -> list[SliceRow]:
    return [s for s in slices if s.slice != "all"][:MAX_SLICES]


def _row_height(rows: list[tuple[str, list[tuple[float, str, str]]]]) -> float:
    series = max((len(bars) for _, bars in rows), default=1)
    return 6 + ROW_H * 0.55 * series


def _hbars(
    title: str,
    rows: list[tuple[str, list[tuple[float, str, str]]]],
    top: float,
    legend: tuple[tuple[str, str], ...],
    fmt: str,
) -> Chart:
    """Horizontal bars: per row a label and one thin bar per series, scaled to `top`."""
    span = CHART_W - LABEL_W - 60
    rects, labels = [], []
    for r, (label, bars) in enumerate(rows):
        y0 = 8 + r * _row_height(rows)
        labels.append(Label(LABEL_W - 6, y0 + ROW_H * 0.45, label))
        for b, (value, css, tip) in enumerate(bars):
            y = y0 + b * ROW_H * 0.55
            w = span * (value / top if top else 0.0)
            rects.append(Rect(LABEL_W, y, max(w, 0.5), ROW_H * 0.5, css, tip))
            labels.append(Label(LABEL_W + w + 4, y + ROW_H * 0.42, fmt.format(value), "start"))
    height = 16 + len(rows) * _row_height(rows)
    return Chart(title, CHART_W, height, tuple(rects), tuple(labels), legend)


def slice_charts(cand: CandidateResult) -> list[Chart]:
    """Accuracy per slice (baseline vs candidate), flips per slice, regression weight by tag."""
    rows = _rows(cand.metrics.slices)
    acc = [
        (
            s.slice,
            [
                (a.baseline, "base", f"baseline {a.baseline:.1%}"),
                (a.candidate, "cand", f"{cand.name} {a.candidate:.1%}"),
            ],
        )
        for s in rows
        if (a := s.accuracy) is not None
    ]
    flips = [
        (
            s.slice,
            [
                (float(s.regressions), "reg", f"{s.regressions} regressions"),
                (float(s.improvements), "imp", f"{s.improvements} improvements"),
            ],
        )
        for s in rows
    ]
    top_flips = max([v for _, bars in flips for v, _, _ in bars], default=0.0) or 1.0
    weight = [
        (s.slice[4:], [(s.regression_weight, "reg", f"{s.regression_weight:g} weight lost")])
        for s in rows
        if s.slice.startswith("tag=")
    ]
    top_weight = max([bars[0][0] for _, bars in weight], default=0.0) or 1.0
    # a chart with nothing to show (no scored slice, no flip, no regressed weight) is left out
    charts = []
    if acc:
        charts.append(
            _hbars(
                "Weighted accuracy per slice",
                acc,
                1.0,
                (("base", "baseline"), ("cand", cand.name)),
                "{:.0%}",
            )
        )
    if any(v for _, bars in flips for v, _, _ in bars):
        charts.append(
            _hbars(
                "Flips per slice",
                flips,
                top_flips,
                (("reg", "regressions"), ("imp", "improvements")),
                "{:g}",
            )
        )
    if any(bars[0][0] for _, bars in weight):
        charts.append(
            _hbars(
                "Weight of regressions by tag",
                weight,
                top_weight,
                (("reg", "regressed weight"),),
                "{:g}",
            )
        )
    return charts


def data_island(
    results: Results, paired: dict[str, list[PairedItem]], identity: dict[str, str]
) -> dict[str, Any]:
    """Everything the page's script renders: each item's results.json row, with what only
    the page shows added (diff runs, per-token KLD, the baseline's tokens), and the
    imported verdicts."""
    items: list[dict[str, Any]] = []
    for i, result in enumerate(results.items):
        row = to_json(result)
        row["prompt_text"] = conversation_text(row["prompt"], row["messages"], row.get("declared"))
        any_pair = max(paired.values(), key=len)[i]
        row["baseline"]["tokens"] = list(any_pair.baseline.output_tokens)
        for name, pairs in paired.items():
            if i >= len(pairs):  # a sequential run's candidate stopped before this item
                continue
            q = pairs[i]
            row["candidates"][name] |= {
                "kld": None if q.tokens is None else [round(k, 6) for k in q.tokens.kld],
                "kld_bound": None if q.tokens is None else q.tokens.kld_top_k,
                "diff": diff_ops(q.baseline.output, q.candidate.output),
            }
        items.append(row)
    imported = {
        name: {
            it.id: to_json(side.review)
            for it in results.items
            if (side := it.candidates.get(name)) is not None and side.review is not None
        }
        for name in paired
    }
    tags = sorted({t for it in results.items for t in it.tags})
    return identity | {
        "candidates": [{"name": c.name, "gated": c.gated} for c in results.candidates],
        "first": first_to_review(results),
        "tags": tags,
        "items": items,
        "imported": imported,
    }


def shown_columns(results: Results) -> list[Any]:
    """The metrics table's columns that have something to show for some candidate: a
    reference-free set shows its shares and distribution columns, not a row of "n/a"."""
    return [
        col
        for col in TABLE_COLUMNS
        if any(col.cell(c.metrics).text not in ("n/a", "") for c in results.candidates)
    ]


def first_to_review(results: Results) -> str | None:
    """The candidate the review queue opens on: the one with the most to review (regressions
    and diverged reference-free items), the first listed among equals; None without any."""
    best, most = None, -1
    for c in results.candidates:
        counts = [c.metrics[k] for k in ("regressions", "free_diverged")]
        count = sum(n for n in counts if isinstance(n, int))
        if count > most:
            best, most = c.name, count
    return best


def _visible(value: Any) -> Any:
    """Bidirectional controls in every string of the data island shown as markers (the island
    is JSON with non-ASCII escaped, so the page's own pass does not see them)."""
    if isinstance(value, str):
        return visible_bidi(value)
    if isinstance(value, list):
        return [_visible(v) for v in value]
    if isinstance(value, dict):
        return {k: _visible(v) for k, v in value.items()}
    return value


def made_by(info: CandidateInfo) -> str:
    q = info.quantize
    if q is None:
        return f"checkpoint {info.path} ({info.backend})"
    if isinstance(q, GgufSpec):
        if q.type.lower() == q.outtype:
            return (
                f"the baseline's own weights converted to an {q.type} GGUF and run by "
                "llama.cpp: the engine noise floor, what the engine alone moves before "
                "quantization adds anything"
            )
        text = f"{q.describe()}: convert_hf_to_gguf.py, llama-quantize"
        if q.imatrix:
            sha = str(info.calibration_sha256)[:12]
            text += f", importance matrix (llama-imatrix) on {q.imatrix} (sha256 {sha}…)"
        return text
    text = f"{q.describe()} with llm-compressor" if isinstance(q, QuantizeSpec) else q.describe()
    if q.calibration:
        sha = str(info.calibration_sha256)[:12]
        text += f", calibrated on {q.calibration} (sha256 {sha}…)"
    return text


def evidence_lines(c: CandidateResult) -> list[str]:
    """Per rule on an interval: what this run resolves and what deciding it would take."""
    return [f"{r.rule}: {evidence_sentence(r)}" for r in c.rules if r.evidence is not None]


def input_notes(info: CandidateInfo) -> list[str]:
    """What the candidate's own tokenizer would have done otherwise: it is fed the baseline's
    ids and stops on the baseline's stop ids, but a server tokenizing text itself would not."""
    notes = []
    if info.split_differently:
        notes.append(
            f"Its own tokenizer splits {info.split_differently} prompt(s) into other "
            "ids than the baseline's (same vocabulary): it was fed the baseline's ids; "
            "served with text prompts it would see the other ids."
        )
    if info.own_stop_ids is not None:
        ids = ", ".join(str(i) for i in info.own_stop_ids)
        notes.append(
            f"It names other stop ids ({ids}) than the baseline's; like every model, it "
            "stopped on the baseline's."
        )
    return notes


def speed_rows(results: Results) -> list[dict[str, Any]]:
    """Speed next to quality: per model, its engine, generated tokens per second, the
    engine's peak memory, and the quality figures beside them."""
    d = results.header.durations
    base = results.header.baseline
    rows = [
        {
            "name": base.name,
            "backend": base.backend,
            "tps": d.tokens_per_second.get(base.name),
            "memory": d.peak_memory_mb.get(base.name),
            "accuracy": None,
            "kld": None,
        }
    ]
    for c in results.candidates:
        acc = c.metrics["weighted_accuracy"]
        rows.append(
            {
                "name": c.name,
                "backend": c.info.backend,
                "tps": d.tokens_per_second.get(c.name),
                "memory": d.peak_memory_mb.get(c.name),
                "accuracy": acc.candidate if isinstance(acc, Interval) else None,
                "kld": _kld_cell(c.metrics),
            }
        )
    return rows


def _kld_cell(m: CandidateMetrics) -> str:
    col = next(c for c in TABLE_COLUMNS if c.header == "mean KLD")
    return col.cell(m).plain()


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"pct": pct, "pts": pts, "num": num}
    env.globals["kld_text"] = _kld_cell
    return env


def page_script(name: str) -> tuple[str, str]:
    """A page's one script: the shared review export, then the page's own (`name`), and the
    sha256 source its Content-Security-Policy allows."""
    script = "\n".join(
        (TEMPLATES / f).read_text(encoding="utf-8") for f in ("review_export.js", name)
    )
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return script, f"sha256-{digest}"


def render_html(
    results: Results, paired: dict[str, list[PairedItem]], identity: dict[str, str]
) -> str:
    """The review page. Cards are built in the browser from a JSON data island (serialised
    with jinja's `tojson`, which escapes <, >, & and quotes); the script's own sha256 goes
    into the Content-Security-Policy, so no other script can run and nothing is fetched."""
    script, script_hash = page_script("report.js")
    charts = {c.name: slice_charts(c) for c in results.candidates}
    hists = {
        c.name: histogram(list(c.metrics.distribution.histogram))
        for c in results.candidates
        if c.metrics.distribution
    }
    limit = results.header.settings.gate.limits.get("max_weighted_accuracy_drop")
    scatter = [] if results.ladder is None else ladder_charts(results.ladder, limit)
    template = environment().get_template("report.html.j2")
    # bidirectional controls anywhere in the page (a tag, an output, a comment) are shown as
    # markers: a reviewer sees the characters that are there, not a reordered line
    return visible_bidi(
        template.render(
            r=results,
            made_by=made_by,
            input_notes=input_notes,
            evidence_lines=evidence_lines,
            interval_used=interval_used(
                results.header.sequential is not None, results.header.settings.stats.confidence
            ),
            hists=hists,
            charts=charts,
            columns=shown_columns(results),
            speed=speed_rows(results),
            ladder_charts=scatter,
            by_name={c.name: c for c in results.candidates},
            script=script,
            script_hash=script_hash,
            data=_visible(data_island(results, paired, identity)),
        )
    )
