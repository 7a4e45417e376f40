"""Hand review verdicts: what a reviewer exported from report.html, merged into the run.

`review.json` (exported by the page) names the run (`run_id`) and the results it was made
on (`results_sha256`, the sha256 of results.json as `harness compare` wrote it, kept in
run.json: importing verdicts rewrites results.json but never changes that identity).
`import_review` refuses a review of another run or other results, validates every verdict,
and merges it into the run folder's own `review.json`; later imports win per item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.compare import Outcome, PairedItem

VERDICTS = ("harmless", "regression", "unsure")
MERGED = "review.json"
SCHEMA = "harness-review/1"


class ReviewError(Exception):
    """A review file that cannot be imported; one line saying why."""


@dataclass(frozen=True, slots=True)
class ReviewSummary:
    flagged: int  # items whose outputs differ (the review queue)
    reviewed: int  # flagged items with a verdict
    hard_regressions_unreviewed: int
    confirmed_regressions: int  # items a reviewer marked "regression"
    harmless: int
    unsure: int


def run_id(run: dict[str, Any]) -> str:
    return f"{run['name']}@{run['created_at']}"


def load_merged(run_dir: Path) -> dict[str, Any]:
    """The run's merged reviews: `imports` (who, when, how many) and `verdicts` (candidate ->
    item id -> {verdict, comment, reviewer, at}); both empty before any import."""
    path = run_dir / MERGED
    if not path.is_file():
        return {"imports": [], "verdicts": {}}
    merged: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return merged


def summarize_review(
    paired: list[PairedItem], verdicts: dict[str, dict[str, str]]
) -> ReviewSummary:
    flagged = [p for p in paired if p.outcome is not Outcome.IDENTICAL]
    marked = [verdicts[p.item.id]["verdict"] for p in flagged if p.item.id in verdicts]
    return ReviewSummary(
        flagged=len(flagged),
        reviewed=len(marked),
        hard_regressions_unreviewed=sum(
            p.outcome is Outcome.REGRESSION and p.item.hard and p.item.id not in verdicts
            for p in paired
        ),
        confirmed_regressions=sum(v["verdict"] == "regression" for v in verdicts.values()),
        harmless=marked.count("harmless"),
        unsure=marked.count("unsure"),
    )


def _check(
    review: Any, run: dict[str, Any], items: set[str], candidates: set[str]
) -> list[dict[str, Any]]:
    if not isinstance(review, dict) or review.get("schema") != SCHEMA:
        raise ReviewError(f"not a review exported by a harness report (schema {SCHEMA})")
    if review.get("run_id") != run_id(run):
        raise ReviewError(f"the review is for run {review.get('run_id')!r}, not {run_id(run)!r}")
    if review.get("results_sha256") != run.get("results_sha256"):
        raise ReviewError("the review was made on other results (results_sha256 differs)")
    reviewer = review.get("reviewer")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ReviewError("the review names no reviewer")
    verdicts = review.get("verdicts")
    if not isinstance(verdicts, list):
        raise ReviewError("verdicts must be a list")
    for n, v in enumerate(verdicts):
        where = f"verdicts[{n}]"
        if not isinstance(v, dict):
            raise ReviewError(f"{where}: expected an object")
        if v.get("candidate") not in candidates:
            raise ReviewError(f"{where}: unknown candidate {v.get('candidate')!r}")
        if v.get("item") not in items:
            raise ReviewError(f"{where}: unknown item {v.get('item')!r}")
        if v.get("verdict") not in VERDICTS:
            raise ReviewError(f"{where}: verdict must be one of {', '.join(VERDICTS)}")
        if not isinstance(v.get("comment", ""), str):
            raise ReviewError(f"{where}: comment must be a string")
    return verdicts


def import_review(run_dir: Path, review_path: Path, run: dict[str, Any], items: set[str]) -> int:
    """Merge a review into the run folder; returns how many verdicts it brought."""
    try:
        review = json.loads(review_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReviewError(f"{review_path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReviewError(f"{review_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    try:
        verdicts = _check(review, run, items, {c["name"] for c in run["candidates"]})
    except ReviewError as exc:
        raise ReviewError(f"{review_path}: {exc}") from None
    path = run_dir / MERGED
    merged = load_merged(run_dir)
    for v in verdicts:
        merged["verdicts"].setdefault(v["candidate"], {})[v["item"]] = {
            "verdict": v["verdict"], "comment": v.get("comment", ""),
            "reviewer": review["reviewer"], "at": v.get("at") or review.get("exported_at"),
        }  # fmt: skip
    merged["imports"].append({
        "reviewer": review["reviewer"], "exported_at": review.get("exported_at"),
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"), "verdicts": len(verdicts),
    })  # fmt: skip
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(verdicts)
