"""summary.md: the verdicts table (its metric columns declared in `candidate_metrics`), then
each candidate's reasons and hand-review status."""

from __future__ import annotations

from harness.candidate_metrics import SUMMARY_COLUMNS
from harness.render.junit import review_text
from harness.results import Results


def render_markdown(results: Results) -> str:
    headers = ["candidate", "gated", "verdict", *(str(c.summary_header) for c in SUMMARY_COLUMNS)]
    lines = [
        f"# Quantization check: {results.header.name}",
        "",
        f"Baseline `{results.header.baseline.name}`, {len(results.items)} items; "
        "the full review is `report.html` in the run folder.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for c in results.candidates:
        cells = [c.name, "yes" if c.gated else "no", f"**{c.verdict.upper()}**"]
        cells += [col.cell(c.metrics).plain() for col in SUMMARY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    for c in results.candidates:
        lines += ["", f"**{c.name}**: {c.verdict}"] + [f"- {r}" for r in c.reasons]
        review = review_text(results, c).split("\n")
        lines += [f"- Hand review: {review[0]}"] + [f"  - {line}" for line in review[1:]]
    return "\n".join(lines) + "\n"
