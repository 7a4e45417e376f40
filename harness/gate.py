"""The release gate: `gate(metrics, config) -> GateResult`, with a sentence per rule.

Each drop is judged at the pessimistic end of its paired interval by default
(`bound = "upper_ci"`): a gate must be convinced, not merely unsurprised. A value exactly at
its limit passes. A rule that cannot be evaluated (no hard item scored) fails: an error is
never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import GateConfig
from harness.metrics import Interval
from harness.review import ReviewSummary
from harness.summary import CandidateMetrics


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str  # the [gate] key
    passed: bool
    message: str


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: str  # "pass" | "fail"
    rules: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        """The failing rules' sentences; every rule's sentence when all pass."""
        failing = [r.message for r in self.rules if not r.passed]
        return failing or [r.message for r in self.rules]


def pts(x: float) -> str:
    return f"{100 * x:.2f} pts"


def _drop_rule(
    rule: str, label: str, value: Interval | None, limit: float, bound: str
) -> RuleResult:
    if value is None:
        return RuleResult(
            rule,
            False,
            f"{label}: no item of this slice was scored; the limit {pts(limit)} cannot be checked",
        )
    judged = value.ci_high if bound == "upper_ci" else value.drop
    ok = judged <= limit
    where = "the upper end of its interval" if bound == "upper_ci" else "the point estimate"
    return RuleResult(
        rule,
        ok,
        f"{label} dropped {pts(value.drop)} "
        f"(interval {pts(value.ci_low)} to {pts(value.ci_high)}); judged at {where}, "
        f"{pts(judged)} is {'within' if ok else 'over'} the limit of {pts(limit)}",
    )


def _distribution_rules(m: CandidateMetrics, cfg: GateConfig) -> list[RuleResult]:
    """KLD and top-1 rules: point values over every generated token (no interval)."""
    checks = [
        ("max_mean_kld", "Mean per-token KLD", m.mean_kld, cfg.max_mean_kld, "max"),
        ("max_p99_kld", "99th-percentile per-token KLD", m.p99_kld, cfg.max_p99_kld, "max"),
        ("min_top1_agreement", "Top-1 agreement", m.top1_agreement, cfg.min_top1_agreement, "min"),
    ]
    rules = []
    for rule, label, value, limit, kind in checks:
        if limit is None:
            continue
        if value is None:
            rules.append(
                RuleResult(
                    rule,
                    False,
                    f"{label} was not measured ([generation] distribution is off); "
                    f"the limit {limit:g} cannot be checked",
                )
            )
            continue
        ok = value <= limit if kind == "max" else value >= limit
        unit = " nats" if kind == "max" else ""
        bound = "at most" if kind == "max" else "at least"
        rules.append(
            RuleResult(
                rule, ok, f"{label} is {value:.4g}{unit}; it must be {bound} {limit:g}{unit}"
            )
        )
    return rules


def _review_rules(review: ReviewSummary | None, cfg: GateConfig) -> list[RuleResult]:
    rules = []
    r = review or ReviewSummary(0, 0, 0, 0, 0, 0)
    if cfg.require_review:
        ok = r.hard_regressions_unreviewed == 0
        rules.append(RuleResult(
            "require_review", ok,
            f"{r.hard_regressions_unreviewed} hard regression(s) have no hand verdict yet "
            f"({r.reviewed} of {r.flagged} flagged items reviewed); review is required",
        ))  # fmt: skip
    if cfg.max_confirmed_regressions is not None:
        ok = r.confirmed_regressions <= cfg.max_confirmed_regressions
        rules.append(RuleResult(
            "max_confirmed_regressions", ok,
            f"Reviewers confirmed {r.confirmed_regressions} regression(s); the limit is "
            f"{cfg.max_confirmed_regressions}",
        ))  # fmt: skip
    return rules


def gate(m: CandidateMetrics, cfg: GateConfig, review: ReviewSummary | None = None) -> GateResult:
    rules: list[RuleResult] = []
    if cfg.max_weighted_accuracy_drop is not None:
        rules.append(
            _drop_rule(
                "max_weighted_accuracy_drop",
                "Weighted accuracy",
                m.weighted_accuracy,
                cfg.max_weighted_accuracy_drop,
                cfg.bound,
            )
        )
    if cfg.max_hard_accuracy_drop is not None:
        rules.append(
            _drop_rule(
                "max_hard_accuracy_drop",
                "Hard-item accuracy",
                m.hard_accuracy,
                cfg.max_hard_accuracy_drop,
                cfg.bound,
            )
        )
    if cfg.max_hard_regressions is not None:
        ok = m.hard_regressions <= cfg.max_hard_regressions
        rules.append(RuleResult(
            "max_hard_regressions", ok,
            f"{m.hard_regressions} hard item(s) regressed (baseline right, candidate wrong); "
            f"the limit is {cfg.max_hard_regressions}",
        ))  # fmt: skip
    if cfg.max_weighted_regression_share is not None:
        judged = (
            m.regression_share_ci_high if cfg.bound == "upper_ci" else m.weighted_regression_share
        )
        ok = judged <= cfg.max_weighted_regression_share
        rules.append(RuleResult(
            "max_weighted_regression_share", ok,
            f"Regressions carry {m.weighted_regression_share:.2%} of the weight (interval "
            f"{m.regression_share_ci_low:.2%} to {m.regression_share_ci_high:.2%}); judged at "
            f"{judged:.2%} against the limit of {cfg.max_weighted_regression_share:.2%}",
        ))  # fmt: skip
    rules += _distribution_rules(m, cfg)
    rules += _review_rules(review, cfg)
    if not rules:
        return GateResult(
            "fail", (RuleResult("gate", False, "No gate rule is set: nothing can pass."),)
        )
    return GateResult("pass" if all(r.passed for r in rules) else "fail", tuple(rules))
