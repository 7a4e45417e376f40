"""Hand review verdicts: what a reviewer exported from report.html, merged into the run.

`review.json` (exported by the page) names the run (`run_id`) and the results it was made
on (`results_sha256`, the sha256 of results.json as `harness compare` wrote it, kept in
run.json: importing verdicts rewrites results.json but never changes that identity).
`check_review` refuses a review of another run or other results and validates every
verdict; `merge` folds it into the run's own `Reviews` (later imports win per item). The
run folder (`rundir.py`) reads and writes the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.records import Outcome, PairedItem

VERDICTS = ("harmless", "regression", "unsure")
SCHEMA = "harness-review/1"


class ReviewError(HarnessError):
    """A review file that cannot be imported; one line saying why."""


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # one of VERDICTS
    comment: str
    reviewer: str
    at: str | None


@dataclass(frozen=True, slots=True)
class Reviews:
    """The run's merged reviews: who imported what when, and the verdicts (candidate ->
    item id -> verdict); both empty before any import."""

    imports: tuple[dict[str, Any], ...] = ()
    verdicts: dict[str, dict[str, Verdict]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    flagged: int  # items whose outputs differ (the review queue)
    reviewed: int  # flagged items with a verdict
    hard_regressions_unreviewed: int
    confirmed_regressions: int  # items a reviewer marked "regression"
    harmless: int
    unsure: int


def review_status(paired: Sequence[PairedItem], verdicts: Mapping[str, Verdict]) -> ReviewStatus:
    flagged = [p for p in paired if p.outcome is not Outcome.IDENTICAL]
    marked = [verdicts[p.item.id].verdict for p in flagged if p.item.id in verdicts]
    return ReviewStatus(
        flagged=len(flagged),
        reviewed=len(marked),
        hard_regressions_unreviewed=sum(
            p.outcome is Outcome.REGRESSION and p.item.hard and p.item.id not in verdicts
            for p in paired
        ),
        confirmed_regressions=sum(v.verdict == "regression" for v in verdicts.values()),
        harmless=marked.count("harmless"),
        unsure=marked.count("unsure"),
    )


def check_review(
    review: Any, run_id: str, results_sha256: str | None, items: set[str],
    flagged: Mapping[str, set[str]],
) -> list[dict[str, Any]]:  # fmt: skip
    """The verdicts of an exported review, every one validated; ReviewError otherwise. A
    verdict may only judge an item that was flagged for that candidate (its review queue)."""
    if not isinstance(review, dict) or review.get("schema") != SCHEMA:
        raise ReviewError(f"not a review exported by a harness report (schema {SCHEMA})")
    if review.get("run_id") != run_id:
        raise ReviewError(f"the review is for run {review.get('run_id')!r}, not {run_id!r}")
    if review.get("results_sha256") != results_sha256:
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
        if v.get("candidate") not in flagged:
            raise ReviewError(f"{where}: unknown candidate {v.get('candidate')!r}")
        if v.get("item") not in items:
            raise ReviewError(f"{where}: unknown item {v.get('item')!r}")
        if v["item"] not in flagged[v["candidate"]]:
            raise ReviewError(f"{where}: item {v['item']!r} was not flagged for "
                              f"{v['candidate']!r} (its output is the baseline's): nothing to "
                              "review")  # fmt: skip
        if v.get("verdict") not in VERDICTS:
            raise ReviewError(f"{where}: verdict must be one of {', '.join(VERDICTS)}")
        if not isinstance(v.get("comment", ""), str):
            raise ReviewError(f"{where}: comment must be a string")
    return verdicts


def merge(reviews: Reviews, review: dict[str, Any], verdicts: list[dict[str, Any]],
          imported_at: str) -> Reviews:  # fmt: skip
    """`reviews` with a checked review folded in: its verdicts win per item."""
    merged = {cand: dict(items) for cand, items in reviews.verdicts.items()}
    for v in verdicts:
        merged.setdefault(v["candidate"], {})[v["item"]] = Verdict(
            v["verdict"], v.get("comment", ""), review["reviewer"],
            v.get("at") or review.get("exported_at"),
        )  # fmt: skip
    record = {
        "reviewer": review["reviewer"], "exported_at": review.get("exported_at"),
        "imported_at": imported_at, "verdicts": len(verdicts),
    }  # fmt: skip
    return Reviews((*reviews.imports, record), merged)
