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
from datetime import datetime
from typing import Any

from harness.records import Outcome, PairedItem
from harness.records.errors import HarnessError
from harness.records.review import SCHEMA, VERDICTS, Reviews, ReviewStatus, Verdict


class ReviewError(HarnessError):
    """A review file that cannot be imported; one line saying why."""


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


# The fields an exported review has (report.js writes them); anything else is refused, so
# that nothing the merge does not check can reach review.json.
TOP_FIELDS = ("schema", "run_id", "results_sha256", "reviewer", "exported_at", "verdicts")
VERDICT_FIELDS = ("candidate", "item", "verdict", "comment", "at")
MAX_NAME, MAX_COMMENT = 200, 20_000


def _timestamp(value: Any, where: str) -> str | None:
    """An ISO-8601 timestamp as the page writes it (`2026-12-01T18:34:09.123Z`), or null."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            datetime.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ReviewError(f"{where}: {str(value)[:40]!r} is not an ISO-8601 timestamp")


def _text(value: Any, where: str, limit: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise ReviewError(f"{where}: expected a string, not {type(value).__name__}")
    if required and not value.strip():
        raise ReviewError(f"{where}: empty")
    if len(value) > limit:
        raise ReviewError(f"{where}: {len(value):,} characters; at most {limit:,}")
    return value


def _fields(record: dict[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(str(k) for k in record if k not in known)
    if unknown:
        raise ReviewError(
            f"{where}: unknown field {unknown[0]!r} (a review has {', '.join(known)})"
        )


def check_review(
    review: Any,
    run_id: str,
    results_sha256: str | None,
    items: set[str],
    flagged: Mapping[str, set[str]],
) -> list[dict[str, Any]]:
    """The verdicts of an exported review, every field validated (types, labels, candidate
    and item names, timestamps), as clean records; ReviewError naming the field otherwise.
    A verdict may only judge an item that was flagged for that candidate (its queue)."""
    if not isinstance(review, dict) or review.get("schema") != SCHEMA:
        raise ReviewError(f"not a review exported by a harness report (schema {SCHEMA})")
    _fields(review, TOP_FIELDS, "the review")
    if review.get("run_id") != run_id:
        raise ReviewError(
            f"the review is for run {str(review.get('run_id'))[:80]!r}, not {run_id!r}"
        )
    if review.get("results_sha256") != results_sha256:
        raise ReviewError("the review was made on other results (results_sha256 differs)")
    if "reviewer" not in review:
        raise ReviewError("the review names no reviewer")
    _text(review["reviewer"], "reviewer", MAX_NAME, required=True)
    _timestamp(review.get("exported_at"), "exported_at")
    verdicts = review.get("verdicts")
    if not isinstance(verdicts, list):
        raise ReviewError("verdicts must be a list")
    out = []
    for n, v in enumerate(verdicts):
        where = f"verdicts[{n}]"
        if not isinstance(v, dict):
            raise ReviewError(f"{where}: expected an object")
        _fields(v, VERDICT_FIELDS, where)
        cand, item = v.get("candidate"), v.get("item")
        if not isinstance(cand, str) or cand not in flagged:
            raise ReviewError(f"{where}.candidate: unknown candidate {str(cand)[:80]!r}")
        if not isinstance(item, str) or item not in items:
            raise ReviewError(f"{where}.item: unknown item {str(item)[:80]!r}")
        if item not in flagged[cand]:
            raise ReviewError(
                f"{where}.item: {item!r} was not flagged for {cand!r} (its "
                "output is the baseline's): nothing to review"
            )
        if v.get("verdict") not in VERDICTS:
            raise ReviewError(f"{where}.verdict: must be one of {', '.join(VERDICTS)}")
        out.append(
            {
                "candidate": cand,
                "item": item,
                "verdict": v["verdict"],
                "comment": _text(v.get("comment", ""), f"{where}.comment", MAX_COMMENT),
                "at": _timestamp(v.get("at"), f"{where}.at"),
            }
        )
    return out


def merge(
    reviews: Reviews, review: dict[str, Any], verdicts: list[dict[str, Any]], imported_at: str
) -> Reviews:
    """`reviews` with a checked review folded in: its verdicts win per item."""
    merged = {cand: dict(items) for cand, items in reviews.verdicts.items()}
    for v in verdicts:
        merged.setdefault(v["candidate"], {})[v["item"]] = Verdict(
            v["verdict"],
            v.get("comment", ""),
            review["reviewer"],
            v.get("at") or review.get("exported_at"),
        )
    record = {
        "reviewer": review["reviewer"],
        "exported_at": review.get("exported_at"),
        "imported_at": imported_at,
        "verdicts": len(verdicts),
    }
    return Reviews((*reviews.imports, record), merged)
