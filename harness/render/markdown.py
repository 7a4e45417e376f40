"""summary.md: the verdicts table (its metric columns declared in `harness.analysis.metrics`), then
each candidate's reasons and hand-review status."""

from __future__ import annotations

from harness.records.ladder import Ladder
from harness.records.neutral import markdown_text
from harness.records.results import Results
from harness.render.formats import SUMMARY_COLUMNS, num
from harness.render.junit import review_text
from harness.render.verdicts import evidence_sentence, interval_used


def ladder_table(ladder: Ladder) -> list[str]:
    """The ladder as a Markdown table, heaviest rung first."""
    lines = [
        "| rung | recipe | size (MB) | bits/weight | smaller | tokens/s x "
        "| weighted drop (interval) | mean KLD | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ladder.rungs:
        d = r.drop
        drop = (
            "n/a"
            if d is None
            else (f"{100 * d.drop:+.1f} ({100 * d.ci_low:+.1f} to {100 * d.ci_high:+.1f}) pts")
        )
        cells = [
            r.name + (" (target)" if r.name == ladder.target else ""),
            r.recipe,
            "n/a" if r.size_bytes is None else f"{r.size_bytes / 1e6:.2f}",
            "n/a" if r.bits_per_weight is None else f"{r.bits_per_weight:.2f}",
            "n/a" if r.smaller is None else f"{r.smaller:.1f}x",
            "n/a" if r.speedup is None else f"{r.speedup:.2f}x",
            drop,
            ("≥ " if r.kld_top_k else "") + num(r.mean_kld),
            f"**{r.verdict.upper()}**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ladder_section(ladder: Ladder) -> list[str]:
    lines = ["## Ladder", "", *ladder_table(ladder), "", ladder.answer + ".", ""]
    lines += [
        f"- Cliff ({c.slice}; {ladder.exploratory}): {c.heavier} → {c.lighter}, drop "
        f"{100 * c.before:.1f} → {100 * c.after:.1f} points"
        for c in ladder.cliffs
    ]
    for p in ladder.pairs:
        lines.append(
            f"- Calibration pair ({p.recipe}): "
            + ", ".join(f"{n} on {cal}" for n, cal in zip(p.rungs, p.calibrations, strict=True))
        )
    lines.append(f"- Release decision: **{ladder.decision.upper()}**: {ladder.decision_reason}")
    return [*lines, ""]


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
    if results.ladder is not None:
        lines[4:4] = ladder_section(results.ladder)
    if results.baseline_note is not None:
        lines[2:2] = [f"> **{results.baseline_note}**", ""]
    for c in results.candidates:
        cells = [c.name, "yes" if c.gated else "no", f"**{c.verdict.upper()}**"]
        cells += [col.cell(c.metrics).plain() for col in SUMMARY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    used = interval_used(
        results.header.sequential is not None, results.header.settings.stats.confidence
    )
    lines += ["", used]
    for c in results.candidates:
        lines += ["", f"**{c.name}**: {c.verdict}"] + [f"- {r}" for r in c.reasons]
        lines += [f"- {r.rule}: {evidence_sentence(r)}" for r in c.rules if r.evidence]
        # review comments, reviewers and item ids are untrusted: shown as text, never markup
        review = [markdown_text(line) for line in review_text(results, c).split("\n")]
        lines += [f"- Hand review: {review[0]}"] + [f"  - {line}" for line in review[1:]]
    return "\n".join(lines) + "\n"
