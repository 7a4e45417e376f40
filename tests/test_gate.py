"""Gate decisions, exactly at and around each threshold: pass (the pessimistic end within the
limit), fail (even the optimistic end beyond it), undecided (the interval straddles it)."""

from __future__ import annotations

import pytest

from harness.analysis.gate import gate
from harness.analysis.metrics import summarize
from harness.records import (
    CandidateMetrics,
    GateSettings,
    Interval,
    Outcome,
    PairedItem,
    SliceSettings,
    StatsSettings,
)
from harness.records.pool import DROP, Pool
from harness.render.verdicts import evidence_sentence, interval_used

from .test_metrics import paired


def metrics(**changes: object) -> CandidateMetrics:
    values = dict(
        weighted_accuracy=Interval(0.9, 0.88, 0.02, 0.01, 0.03),
        hard_accuracy=Interval(0.6, 0.55, 0.05, 0.02, 0.08),
        regressions=4,
        improvements=1,
        hard_regressions=2,
        weighted_regression_share=0.04,
        regression_share_ci_low=0.02,
        regression_share_ci_high=0.06,
        mcnemar_p=0.375,
        identical_share=0.9,
        mean_similarity=0.95,
        items=100,
        scored=100,
        unscorable=0,
        mean_kld=0.02,
        p99_kld=0.3,
        top1_agreement=0.97,
        reference_ppl_ratio=None,
    )
    return CandidateMetrics.of(**(values | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "bound", "verdict"),
    [
        (0.0301, "upper_ci", "pass"),
        (0.03, "upper_ci", "undecided"),  # a tie at the upper end is not a pass
        (0.0299, "upper_ci", "undecided"),
        (0.01, "upper_ci", "undecided"),  # exactly at the lower end: no loss is shown
        (0.0099, "upper_ci", "fail"),
        (0.02, "point", "pass"),  # exactly at the point estimate
        (0.0199, "point", "fail"),
    ],
)
def test_weighted_drop_at_threshold(limit: float, bound: str, verdict: str) -> None:
    result = gate(metrics(), GateSettings.of(max_weighted_accuracy_drop=limit, bound=bound))  # type: ignore[arg-type]
    assert result.verdict == verdict


def test_hard_drop_uses_the_hard_interval() -> None:
    assert gate(metrics(), GateSettings.of(max_hard_accuracy_drop=0.0801)).verdict == "pass"
    assert gate(metrics(), GateSettings.of(max_hard_accuracy_drop=0.08)).verdict == "undecided"
    assert gate(metrics(), GateSettings.of(max_hard_accuracy_drop=0.07)).verdict == "undecided"
    assert gate(metrics(), GateSettings.of(max_hard_accuracy_drop=0.0199)).verdict == "fail"


def test_hard_regressions_at_threshold() -> None:
    assert gate(metrics(), GateSettings.of(max_hard_regressions=2)).verdict == "pass"
    assert gate(metrics(), GateSettings.of(max_hard_regressions=1)).verdict == "fail"


def test_regression_share_at_threshold() -> None:
    assert gate(metrics(), GateSettings.of(max_weighted_regression_share=0.0601)).verdict == "pass"
    assert (
        gate(metrics(), GateSettings.of(max_weighted_regression_share=0.06)).verdict == "undecided"
    )
    share = GateSettings.of(max_weighted_regression_share=0.05)
    assert gate(metrics(), share).verdict == "undecided"
    assert gate(metrics(), GateSettings.of(max_weighted_regression_share=0.0199)).verdict == "fail"
    point = GateSettings.of(max_weighted_regression_share=0.04, bound="point")
    assert gate(metrics(), point).verdict == "pass"


def test_reasons_name_metric_value_interval_and_limit() -> None:
    result = gate(
        metrics(), GateSettings.of(max_weighted_accuracy_drop=0.005, max_hard_regressions=5)
    )
    assert result.verdict == "fail"
    assert result.reasons == [
        "Weighted accuracy dropped 2.00 pts (interval 1.00 pts to 3.00 pts); even its lower "
        "end, 1.00 pts, is over the limit of 0.50 pts: the loss is shown"
    ]
    assert len(result.rules) == 2
    open_ = gate(metrics(), GateSettings.of(max_weighted_accuracy_drop=0.02))
    assert open_.verdict == "undecided" and open_.reasons == [
        "Weighted accuracy dropped 2.00 pts (interval 1.00 pts to 3.00 pts); undecided: the "
        "interval straddles the limit of 2.00 pts (more items decide it)"
    ]


def test_a_candidate_fails_on_any_failed_rule_and_is_undecided_on_any_open_one() -> None:
    both = GateSettings.of(max_weighted_accuracy_drop=0.02, max_hard_regressions=1)
    assert [r.verdict for r in gate(metrics(), both).rules] == ["undecided", "fail"]
    assert gate(metrics(), both).verdict == "fail"
    some = GateSettings.of(max_weighted_accuracy_drop=0.02, max_hard_regressions=2)
    assert gate(metrics(), some).verdict == "undecided"
    point = GateSettings.of(max_weighted_accuracy_drop=0.02, bound="point")
    assert gate(metrics(), point).verdict == "pass"  # a point estimate is never undecided


def test_no_hard_items_fails_closed() -> None:
    result = gate(metrics(hard_accuracy=None), GateSettings.of(max_hard_accuracy_drop=0.5))
    assert result.verdict == "fail" and "cannot be checked" in result.reasons[0]


def test_no_rule_is_not_a_pass() -> None:
    assert gate(metrics(), GateSettings.of()).verdict == "fail"


def test_unknown_bound_is_rejected() -> None:
    with pytest.raises(ValueError):
        GateSettings(bound="lower_ci")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "limit", "verdict"),
    [
        ("max_mean_kld", 0.02, "pass"),
        ("max_mean_kld", 0.0199, "fail"),
        ("max_p99_kld", 0.3, "pass"),
        ("max_p99_kld", 0.29, "fail"),
        ("min_top1_agreement", 0.97, "pass"),
        ("min_top1_agreement", 0.971, "fail"),
    ],
)
def test_distribution_rules_at_threshold(key: str, limit: float, verdict: str) -> None:
    result = gate(metrics(), GateSettings.of(**{key: limit}))  # type: ignore[arg-type]
    assert result.verdict == verdict and result.rules[0].rule == key


def test_unmeasured_distribution_fails_closed() -> None:
    result = gate(metrics(mean_kld=None), GateSettings.of(max_mean_kld=1.0))
    assert result.verdict == "fail" and "not measured" in result.reasons[0]


def test_diverged_share_of_reference_free_items() -> None:
    """Judged on its interval, said as every share rule is (issue 35: it printed 0.7692)."""
    moved = metrics(diverged_share=0.3, diverged_share_ci_low=0.26, diverged_share_ci_high=0.34)
    result = gate(moved, GateSettings.of(max_diverged_share=0.25))
    assert result.verdict == "fail"
    assert result.reasons == [
        "Reference-free items diverged in meaning or answer: a weighted share of 30.00% "
        "(interval 26.00% to 34.00%); judged at 34.00% against the limit of 25.00%: even the "
        "lower end is over it"
    ]
    assert gate(moved, GateSettings.of(max_diverged_share=0.3)).verdict == "undecided"
    assert gate(moved, GateSettings.of(max_diverged_share=0.35)).verdict == "pass"
    none = gate(metrics(), GateSettings.of(max_diverged_share=0.3))
    assert none.verdict == "fail" and "No reference-free item was judged" in none.reasons[0]


def _paired(n: int, regressions: int) -> list[PairedItem]:
    out = [paired(f"r{i}", 1.0, 0.0, Outcome.REGRESSION) for i in range(regressions)]
    return out + [paired(f"s{i}", 1.0, 1.0, Outcome.IDENTICAL) for i in range(n - regressions)]


def test_evidence_of_a_fixed_run_and_of_a_sequential_one() -> None:
    """A fixed-size run sizes the same mix with a range; a sequential run's undecided rule
    says what its sequence would need on the pool's rest (simulated)."""
    items = _paired(200, 2)
    m = summarize(items, StatsSettings(seed=0), SliceSettings())
    cfg = GateSettings.of(max_weighted_accuracy_drop=0.02)
    [rule] = gate(m, cfg, None, items).rules
    assert rule.verdict == "undecided" and rule.evidence is not None
    e = rule.evidence
    assert not e.sequential and e.items_needed is not None and e.needed_low is not None
    assert e.needed_low <= e.items_needed
    assert "of the same mix (" in evidence_sentence(rule)
    pools = {
        "max_weighted_accuracy_drop": Pool(
            size=2_000, total_weight=2_000.0, max_weight=1.0, range=DROP
        )
    }
    [seq] = gate(m, cfg, None, items, 0.95, pools).rules
    assert seq.evidence is not None and seq.evidence.sequential
    assert "continued on the rest of the pool" in evidence_sentence(seq)


def test_the_card_says_which_interval_was_judged() -> None:
    assert "paired betting intervals" in interval_used(False, 0.95)
    assert "without replacement" in interval_used(True, 0.9)
