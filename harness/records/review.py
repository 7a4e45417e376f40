"""Hand review verdicts as the run keeps them: what a reviewer said of a flagged item
(`Verdict`), the run's merged reviews (`Reviews`, review.json) and their count per candidate
(`ReviewStatus`, in results.json)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

ReviewVerdict = Literal["harmless", "regression", "unsure"]
VERDICTS: tuple[str, ...] = typing.get_args(ReviewVerdict)
SCHEMA = "harness-review/1"


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: ReviewVerdict
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
