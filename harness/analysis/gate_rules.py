"""The kinds of gate rule: a `[gate]` key, how its value is checked when the config is read,
and the judge that turns a candidate's metrics (or its review status) and the limit into a
verdict and the sentence that says why. `harness.analysis.metrics` declares which rule
limits which metric."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from harness.records import CandidateMetrics, GateSettings, Interval
from harness.records.pool import DROP, Range
from harness.records.review import ReviewStatus
from harness.records.schema import Key
from harness.records.settings import Bound, GateLimit, GateVerdict

Direction = Literal["max", "min"]


class Limit(Enum):
    """How a `[gate]` value is checked when the config is read."""

    SHARE = "a share between 0 and 1"  # drops, shares, agreement: 0.02 is 2 points
    NUMBER = "a finite number >= 0"  # distances (nats)
    COUNT = "an integer >= 0"
    FLAG = "true or false"


@dataclass(frozen=True, slots=True)
class GateRule:
    key: str  # the [gate] key
    direction: Direction  # "max": the value may not exceed the limit; "min": nor fall below it
    limit: Limit
    # (candidate metrics, review summary, limit, bound) -> (verdict, the sentence)
    judge: Callable[[CandidateMetrics, ReviewStatus, Any, Bound], tuple[GateVerdict, str]]
    default: GateLimit | None = None  # the rule is off at this value
    # What the eval set must hold for the rule to be computed at all, checked before any
    # model runs: "reference" (an item scored against a reference), "hard" (a hard one),
    # "free" (a reference-free item), "distribution" ([generation] distribution on).
    needs: str | None = None
    doc: str = ""  # when the rule fails, in the configuration reference
    # For a rule judged on an interval: its (low, high) ends, and the per-item values
    # (x, weight) whose weighted mean it estimates, from the paired items the metric reads
    # (what `items_needed` sizes).
    interval: Callable[[CandidateMetrics], tuple[float, float] | None] | None = None
    per_item: Callable[[Any], tuple[list[float], list[float]]] | None = None
    range: Range = DROP  # the known range of the per-item value x

    def setting(self) -> Key:
        """The rule's `[gate]` key, declared for the config reader and the reference."""
        kind: dict[Limit, Any] = {
            Limit.SHARE: float,
            Limit.NUMBER: float,
            Limit.COUNT: int,
            Limit.FLAG: bool,
        }
        bounds: dict[str, Any] = {"ge": 0} if self.limit is not Limit.FLAG else {}
        if self.limit is Limit.SHARE:
            # A share written in percent or points (2 for 2%) would let almost anything pass.
            bounds |= {"le": 1, "hint": lambda v: f"did you mean {v / 100:g}?" if v > 1 else None}
        means = self.limit.value if self.limit is not Limit.FLAG else None
        return Key(
            name=self.key,
            kind=kind[self.limit] | None,
            doc=self.doc,
            default=self.default,
            means=means,
            **bounds,
        )

    def active(self, cfg: GateSettings) -> bool:
        value = cfg.limits.get(self.key, self.default)
        return value is not None and value is not False


def _pts(x: float) -> str:
    return f"{100 * x:.2f} pts"


def verdict_of(ok: bool) -> GateVerdict:
    return "pass" if ok else "fail"


def three_way(low: float, point: float, high: float, limit: float, bound: Bound) -> GateVerdict:
    """An interval against a limit on how large it may be: `pass` when its pessimistic end
    (`high`) is below it, `fail` when even its optimistic end (`low`) is above it, else
    `undecided`: an end exactly at the limit does not rule the limit out, so a tie is never a
    pass (nor a fail). Judged at the point estimate (`bound = "point"`) there are two
    outcomes."""
    if bound == "point":
        return verdict_of(point <= limit)
    return "pass" if high < limit else "fail" if low > limit else "undecided"


_BEYOND: dict[GateVerdict, Callable[[Interval, float], str]] = {
    "pass": lambda v, limit: (
        f"judged at the upper end of its interval, {_pts(v.ci_high)} is below the limit of "
        f"{_pts(limit)}: a loss as large as the limit is ruled out"
    ),
    "fail": lambda v, limit: (
        f"even its lower end, {_pts(v.ci_low)}, is over the limit of {_pts(limit)}: "
        "the loss is shown"
    ),
    "undecided": lambda v, limit: (
        f"undecided: the interval straddles the limit of {_pts(limit)} (more items decide it)"
    ),
}


def drop_gate(
    key: str,
    name: str,
    label: str,
    needs: str = "reference",
    doc: str = "",
    per_item: Callable[[Any], tuple[list[float], list[float]]] | None = None,
) -> GateRule:
    """A limit on the drop of the paired interval `name`: `pass` when the pessimistic end is
    within it, `fail` when the optimistic end is beyond it, `undecided` in between (at the
    point estimate alone when `bound = "point"`); a slice with nothing scored fails: an error
    is never a pass."""

    def judge(
        m: CandidateMetrics, _: ReviewStatus, limit: float, bound: Bound
    ) -> tuple[GateVerdict, str]:
        value = m[name]
        if not isinstance(value, Interval):
            return "fail", (
                f"{label}: no item of this slice was scored; the limit {_pts(limit)} cannot be "
                "checked"
            )
        verdict = three_way(value.ci_low, value.drop, value.ci_high, limit, bound)
        span = f"interval {_pts(value.ci_low)} to {_pts(value.ci_high)}"
        said = f"{label} dropped {_pts(value.drop)} ({span})"
        if bound == "point":
            word = "within" if verdict == "pass" else "over"
            return verdict, (
                f"{said}; judged at the point estimate, {_pts(value.drop)} is {word} the limit "
                f"of {_pts(limit)}"
            )
        return verdict, f"{said}; {_BEYOND[verdict](value, limit)}"

    def ends(m: CandidateMetrics) -> tuple[float, float] | None:
        value = m[name]
        return (value.ci_low, value.ci_high) if isinstance(value, Interval) else None

    return GateRule(
        key, "max", Limit.SHARE, judge, needs=needs, doc=doc, interval=ends, per_item=per_item
    )


UNMEASURED = "was not measured ([generation] distribution is off)"


def point_gate(
    key: str,
    name: str,
    label: str,
    unit: str,
    direction: Direction = "max",
    missing: str = UNMEASURED,
    limit: Limit = Limit.SHARE,
    needs: str | None = "distribution",
    doc: str = "",
) -> GateRule:
    """A limit on the point value `name` (no interval): at most (`direction = "max"`) or at
    least (`"min"`); a value that was not measured fails, saying why (`missing`)."""

    def judge(
        m: CandidateMetrics, _: ReviewStatus, limit: float, bound: Bound
    ) -> tuple[GateVerdict, str]:
        value = m[name]
        if value is None:
            return "fail", f"{label} {missing}; the limit {limit:g} cannot be checked"
        value = float(value) if isinstance(value, int | float) else math.nan
        ok = value <= limit if direction == "max" else value >= limit
        word = "at most" if direction == "max" else "at least"
        return verdict_of(ok), f"{label} is {value:.4g}{unit}; it must be {word} {limit:g}{unit}"

    return GateRule(key, direction, limit, judge, needs=needs, doc=doc)


def hard_regressions_rule(
    m: CandidateMetrics, _: ReviewStatus, limit: int, bound: Bound
) -> tuple[GateVerdict, str]:
    n = m["hard_regressions"]
    if not isinstance(n, int):
        return "fail", (
            f"No item was scored against a reference; the limit {limit} cannot be checked"
        )
    return verdict_of(n <= limit), (
        f"{n} hard item(s) regressed (baseline right, candidate wrong); the limit is {limit}"
    )


def share_rule(
    name: str, ends: str, label: str, missing: str
) -> Callable[[CandidateMetrics, ReviewStatus, float, Bound], tuple[GateVerdict, str]]:
    """A limit on the weighted share `name` judged on its interval (metrics `{ends}_ci_low`,
    `{ends}_ci_high`), said in one format for every share: "<label> 12.50% (interval 4.10%
    to 27.00%); judged ...". `missing`: why there is no share to judge."""

    def judge(
        m: CandidateMetrics, _: ReviewStatus, limit: float, bound: Bound
    ) -> tuple[GateVerdict, str]:
        share, low, high = m[name], m[f"{ends}_ci_low"], m[f"{ends}_ci_high"]
        if (
            not isinstance(share, float)
            or not isinstance(high, float)
            or not isinstance(low, float)
        ):
            return "fail", f"{missing}; the limit {limit:.2%} cannot be checked"
        verdict = three_way(low, share, high, limit, bound)
        judged = high if bound == "upper_ci" else share
        said = {
            "pass": f"judged at {judged:.2%} against the limit of {limit:.2%}",
            "fail": f"judged at {judged:.2%} against the limit of {limit:.2%}"
            + (": even the lower end is over it" if bound == "upper_ci" else ""),
            "undecided": f"undecided: the interval straddles the limit of {limit:.2%}",
        }[verdict]
        return verdict, f"{label} {share:.2%} (interval {low:.2%} to {high:.2%}); {said}"

    return judge


def share_ends(name: str) -> Callable[[CandidateMetrics], tuple[float, float] | None]:
    def ends(m: CandidateMetrics) -> tuple[float, float] | None:
        low, high = m[f"{name}_ci_low"], m[f"{name}_ci_high"]
        return (low, high) if isinstance(low, float) and isinstance(high, float) else None

    return ends


def require_review_rule(
    m: CandidateMetrics, r: ReviewStatus, limit: bool, bound: Bound
) -> tuple[GateVerdict, str]:
    return verdict_of(r.hard_regressions_unreviewed == 0), (
        f"{r.hard_regressions_unreviewed} hard regression(s) have no hand verdict yet "
        f"({r.reviewed} of {r.flagged} flagged items reviewed); review is required"
    )


def confirmed_rule(
    m: CandidateMetrics, r: ReviewStatus, limit: int, bound: Bound
) -> tuple[GateVerdict, str]:
    return verdict_of(r.confirmed_regressions <= limit), (
        f"Reviewers confirmed {r.confirmed_regressions} regression(s); the limit is {limit}"
    )
