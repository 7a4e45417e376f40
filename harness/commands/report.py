"""`harness report`: every artifact of a run folder rebuilt from disk (no model, no torch)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.commands.common import (
    report_verdicts,
)
from harness.commands.compare import analyze, write_artifacts
from harness.records.results import Results
from harness.records.review import Reviews
from harness.store.rundir import (
    RunDir,
    RunFolderError,
    locked,
)


def rebuild(run_dir: Path) -> Results:
    """Re-derive every artifact of a run folder from what is on disk (no model loaded)."""
    with writing(run_dir, "which is writing the same run folder"):
        return rebuild_with(run_dir)


@contextlib.contextmanager
def writing(run_dir: Path, what: str) -> Iterator[None]:
    """The run folder's lock, waited for: one writer at a time (a compare publishing it, a
    report rebuild, a review import), each reading what the one before wrote."""
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    with locked(run_dir, wait=True, what=what):
        yield


def rebuild_with(run_dir: Path, reviews: Reviews | None = None) -> Results:
    """`rebuild`, the lock held. With `reviews` (new verdicts merged), they are written with
    the artifacts, all or none."""
    folder = RunDir(run_dir)
    run = folder.read_run()
    results, paired = analyze(run, folder, folder.read_reviews() if reviews is None else reviews)
    write_artifacts(folder, run, results, paired, reviews)
    return results


def run(args: argparse.Namespace) -> int:
    return report_verdicts(rebuild(args.run_dir), args.run_dir)


def add_parser(sub: Any) -> None:
    report = sub.add_parser("report", help=help_of("report"))
    report.add_argument("run_dir", type=Path, help="a run folder `compare` wrote")
    report.set_defaults(func=run)
