"""`harness review import`: a reviewer's verdicts merged into the run, every artifact
rebuilt."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.analysis.pairing import sample_item
from harness.analysis.review import ReviewError, check_review, merge
from harness.commands import help_of
from harness.commands.common import (
    report_verdicts,
)
from harness.commands.compare import now
from harness.commands.report import rebuild_with, writing
from harness.inputs.review import read_review
from harness.records import (
    Outcome,
)
from harness.records.results import Results
from harness.store.rundir import (
    RunDir,
)


def import_review(run_dir: Path, review_path: Path) -> tuple[int, Results]:
    """Merge a reviewer's verdicts into the run, then rebuild every artifact (and the gate).
    Returns how many verdicts the review brought, and the new results. Imports into one
    folder take its lock in turn: each merges into what the one before wrote."""
    review = read_review(review_path)
    with writing(run_dir, "which is writing the same run folder (a review import?)"):
        folder = RunDir(run_dir)
        run = folder.read_run()
        # The report's items: the eval set's and, with lm-eval tasks, their samples.
        ids = {item.id for item in run.items}
        if run.header.settings.lm_eval is not None:
            ids |= {sample_item(s).id for s in folder.read_samples(run.header.baseline.name)}
        # What the review queue showed: per candidate, the items whose outcome is not
        # identical (read from results.json: outcomes do not depend on reviews, so nothing is
        # re-paired).
        flagged: dict[str, set[str]] = {c.name: set() for c in run.candidates}
        for it in folder.read_results().items:
            for name, side in it.candidates.items():
                if side.outcome != Outcome.IDENTICAL.value:
                    flagged[name].add(it.id)
        try:
            verdicts = check_review(review, run.header.run_id, run.results_sha256, ids, flagged)
        except ReviewError as exc:
            raise ReviewError(f"{review_path}: {exc}") from None
        merged = merge(folder.read_reviews(), review, verdicts, now())
        return len(verdicts), rebuild_with(run_dir, merged)


def run(args: argparse.Namespace) -> int:
    count, results = import_review(args.run_dir, args.review)
    print(f"imported {count} verdict(s) from {args.review}")
    return report_verdicts(results, args.run_dir)


def add_parser(sub: Any) -> None:
    review = sub.add_parser("review", help=help_of("review"))
    review_sub = review.add_subparsers(dest="review_command", required=True)
    imp = review_sub.add_parser("import", help="merge a review.json exported from report.html")
    imp.add_argument("run_dir", type=Path, help="the run folder the review is of")
    imp.add_argument("review", type=Path, help="the review file the report exported")
    imp.set_defaults(func=run)
