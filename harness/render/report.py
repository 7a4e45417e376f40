"""Every derived artifact of a run folder, rendered from `Results` (no model, no torch):
one renderer per file, in `harness/render/`."""

from __future__ import annotations

from harness.records import PairedItem
from harness.records.results import Results
from harness.render.csv import render_csv
from harness.render.html import render_html
from harness.render.junit import render_junit
from harness.render.markdown import render_markdown
from harness.store.rundir import dumps


def render_all(
    results: Results, paired: dict[str, list[PairedItem]], identity: dict[str, str]
) -> dict[str, str]:
    """File name -> text, for `RunDir.write_artifacts`. `identity` names the run and the
    results a review exported from report.html must belong to."""
    return {
        "results.json": dumps(results.to_json()),
        "items.csv": render_csv(results),
        "junit.xml": render_junit(results),
        "summary.md": render_markdown(results),
        "report.html": render_html(results, paired, identity),
    }
