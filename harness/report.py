"""Render the run's artifacts from results.json's content: report.html (jinja2, autoescape,
StrictUndefined, self-contained), items.csv (pandas), junit.xml and summary.md."""

from __future__ import annotations

import base64
import hashlib
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from harness.compare import PairedItem
from harness.page import data_island, histogram, slice_charts

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


def made_by(cand: dict[str, Any]) -> str:
    q = cand.get("quantize")
    if not q:
        return f"checkpoint {cand['path']}"
    text = f"{q['scheme']} {q['method'].upper()} with llm-compressor"
    if q.get("calibration"):
        sha = str(cand.get("calibration_sha256"))[:12]
        text += f", calibrated on {q['calibration']} (sha256 {sha}…)"
    return text


def render_html(
    results: dict[str, Any], paired: dict[str, list[PairedItem]], identity: dict[str, str]
) -> str:
    """The review page. Cards are built in the browser from a JSON data island (serialised
    with jinja's `tojson`, which escapes <, >, & and quotes); the script's own sha256 goes
    into the Content-Security-Policy, so no other script can run and nothing is fetched."""
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    charts = {c["name"]: slice_charts(c) for c in results["candidates"]}
    hists = {
        c["name"]: histogram(c["distribution"]["histogram"])
        for c in results["candidates"]
        if c["distribution"]
    }
    template = environment().get_template("report.html.j2")
    return template.render(
        r=results, made_by=made_by, hists=hists, charts=charts, script=script,
        script_hash=f"sha256-{digest}", data=data_island(results, paired, identity),
    )  # fmt: skip


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
    for cand in results["candidates"]:
        # Hand-review verdicts: one case per candidate, the verdicts listed in its output.
        case = ET.SubElement(
            suite, "testcase", classname=f"gate.{cand['name']}", name="hand-review"
        )
        cases += 1
        ET.SubElement(case, "system-out").text = review_text(results, cand)
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def review_lines(results: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """The hand verdicts on one candidate, one line each, regressions first."""
    rows = [
        (it["candidates"][cand["name"]]["review"], it["id"])
        for it in results["items"]
        if it["candidates"][cand["name"]].get("review")
    ]
    order = {"regression": 0, "unsure": 1, "harmless": 2}
    rows.sort(key=lambda r: (order[r[0]["verdict"]], r[1]))
    return [
        f"{item}: {v['verdict']} ({v['reviewer']})"
        + (f" - {v['comment']}" if v.get("comment") else "")
        for v, item in rows
    ]


def review_text(results: dict[str, Any], cand: dict[str, Any]) -> str:
    r = cand["review"]
    head = (
        f"{r['reviewed']} of {r['flagged']} flagged items reviewed; {r['confirmed_regressions']} "
        f"confirmed regression(s), {r['harmless']} harmless, {r['unsure']} unsure; "
        f"{r['hard_regressions_unreviewed']} hard regression(s) unreviewed"
    )
    return "\n".join([head, *review_lines(results, cand)])


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
        review = review_text(results, c).split("\n")
        lines += [f"- Hand review: {review[0]}"] + [f"  - {line}" for line in review[1:]]
    return "\n".join(lines) + "\n"
