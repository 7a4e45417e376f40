"""Render the run's artifacts from results.json's content: report.html (jinja2, autoescape,
StrictUndefined, self-contained), items.csv (pandas), junit.xml and summary.md."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.compare import Outcome, PairedItem, word_diff
from harness.summary import KLD_EDGES

TEMPLATES = Path(__file__).parent / "templates"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} pts"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters |= {"pct": pct, "pts": pts, "num": num}
    return env


@dataclass(frozen=True, slots=True)
class Card:
    p: PairedItem
    prompt_text: str
    base_html: Markup
    cand_html: Markup


@dataclass(frozen=True, slots=True)
class Group:
    title: str
    key: str
    cards: tuple[Card, ...]


def prompt_text(p: PairedItem) -> str:
    if p.item.prompt is not None:
        return p.item.prompt
    return "\n".join(f"[{m.role.value}] {m.content}" for m in p.item.messages or ())


def card(p: PairedItem) -> Card:
    base, cand = word_diff(p.baseline.output, p.candidate.output)
    return Card(p, prompt_text(p), base, cand)


def review_queue(paired: list[PairedItem]) -> tuple[list[Group], int]:
    """Hard regressions first, then other regressions, changed outputs (least similar
    first), improvements, unscorable; identical outputs only counted."""
    by = {o: [p for p in paired if p.outcome is o] for o in Outcome}
    heavy = lambda p: (-p.item.weight, p.item.id)  # noqa: E731
    # Changed outputs: the largest distribution shift first (least similar when unmeasured).
    shifted = lambda p: (-(p.kld_mean or 0.0), p.similarity, p.item.id)  # noqa: E731
    regressions = sorted(by[Outcome.REGRESSION], key=heavy)
    groups = [
        Group(
            "Hard regressions",
            "hard-regression",
            tuple(card(p) for p in regressions if p.item.hard),
        ),
        Group(
            "Other regressions",
            "regression",
            tuple(card(p) for p in regressions if not p.item.hard),
        ),
        Group(
            "Changed outputs",
            "changed",
            tuple(card(p) for p in sorted(by[Outcome.CHANGED], key=shifted)),
        ),
        Group(
            "Improvements",
            "improvement",
            tuple(card(p) for p in sorted(by[Outcome.IMPROVEMENT], key=heavy)),
        ),
        Group(
            "Unscorable",
            "unscorable",
            tuple(card(p) for p in sorted(by[Outcome.UNSCORABLE], key=heavy)),
        ),
    ]
    return [g for g in groups if g.cards], len(by[Outcome.IDENTICAL])


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


HIST_W, HIST_H, HIST_PAD = 640.0, 150.0, 24.0


def kld_label(low: float, high: float) -> str:
    """A short bar label: the decade's lower edge (`<1e-06` for the first bar)."""
    if low == 0:
        return f"<{high:.0e}"
    return f"≥{low:.0e}" if math.isinf(high) else f"{low:.0e}"


def histogram_bars(counts: list[int]) -> list[Bar]:
    """Bars of the per-token KLD histogram, in SVG user units; every bar carries its count,
    so the thin tail stays readable next to the near-zero bulk."""
    top = max(counts) or 1
    width = (HIST_W - 2 * HIST_PAD) / len(counts)
    bars = []
    for i, n in enumerate(counts):
        h = (HIST_H - 2 * HIST_PAD) * n / top
        bars.append(Bar(HIST_PAD + i * width + 2, HIST_H - HIST_PAD - h, width - 4, h, n,
                        kld_label(KLD_EDGES[i], KLD_EDGES[i + 1])))  # fmt: skip
    return bars


def made_by(cand: dict[str, Any]) -> str:
    q = cand.get("quantize")
    if not q:
        return f"checkpoint {cand['path']}"
    text = f"{q['scheme']} {q['method'].upper()} with llm-compressor"
    if q.get("calibration"):
        sha = str(cand.get("calibration_sha256"))[:12]
        text += f", calibrated on {q['calibration']} (sha256 {sha}…)"
    return text


def render_html(results: dict[str, Any], paired: dict[str, list[PairedItem]]) -> str:
    queues = {name: review_queue(p) for name, p in paired.items()}
    hists = {
        c["name"]: histogram_bars(c["distribution"]["histogram"])
        for c in results["candidates"]
        if c["distribution"]
    }
    template = environment().get_template("report.html.j2")
    return template.render(
        r=results, queues=queues, made_by=made_by, hists=hists, hist=(HIST_W, HIST_H, HIST_PAD)
    )


def render_csv(results: dict[str, Any]) -> str:
    rows = []
    for it in results["items"]:
        for name, c in it["candidates"].items():
            rows.append({
                "id": it["id"], "candidate": name, "difficulty": it["difficulty"],
                "weight": it["weight"], "tags": ";".join(it["tags"]), "scorer": it["scorer"],
                "reference": " | ".join(it["reference"]),
                "baseline_output": it["baseline"]["output"],
                "baseline_score": it["baseline"]["score"],
                "candidate_output": c["output"], "candidate_score": c["score"],
                "outcome": c["outcome"], "similarity": c["similarity"],
                "first_divergence": c["first_divergence"],
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["first_divergence"] = frame["first_divergence"].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def render_junit(results: dict[str, Any]) -> str:
    """A test case per gated candidate and gate rule; ungated candidates are skipped cases."""
    suite = ET.Element("testsuite", name=f"harness.gate.{results['name']}")
    cases = failures = skipped = 0
    for cand in results["candidates"]:
        for rule in cand["rules"]:
            case = ET.SubElement(
                suite, "testcase", classname=f"gate.{cand['name']}", name=rule["rule"]
            )
            cases += 1
            if not cand["gated"]:
                ET.SubElement(case, "skipped", message=f"not gated: {rule['message']}")
                skipped += 1
            elif not rule["passed"]:
                ET.SubElement(case, "failure", message=rule["message"])
                failures += 1
            ET.SubElement(case, "system-out").text = rule["message"]
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def render_summary(results: dict[str, Any]) -> str:
    lines = [
        f"# Quantization check: {results['name']}",
        "",
        f"Baseline `{results['baseline']['name']}`, {len(results['items'])} items; "
        "the full review is `report.html` in the run folder.",
        "",
        "| candidate | gated | verdict | weighted acc. drop (interval) | hard acc. drop (interval) "
        "| regressions (hard) | improvements | McNemar p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in results["candidates"]:
        m = c["metrics"]
        w, h = m["weighted_accuracy"], m["hard_accuracy"]
        hard = f"{pts(h['drop'])} ({pts(h['ci_low'])} to {pts(h['ci_high'])})" if h else "n/a"
        lines.append(
            f"| {c['name']} | {'yes' if c['gated'] else 'no'} | **{c['verdict'].upper()}** | "
            f"{pts(w['drop'])} ({pts(w['ci_low'])} to {pts(w['ci_high'])}) | {hard} | "
            f"{m['regressions']} ({m['hard_regressions']}) | {m['improvements']} | "
            f"{m['mcnemar_p']:.3g} |"
        )
    for c in results["candidates"]:
        lines += ["", f"**{c['name']}**: {c['verdict']}"] + [f"- {r}" for r in c["reasons"]]
    return "\n".join(lines) + "\n"
