"""The release gate: `gate(metrics, config, review, paired) -> GateResult`, with a sentence
and a verdict per rule: `pass`, `fail` or `undecided`.

The rules are the `GateRule`s declared in `candidate_metrics` (in declaration order). A rule on
a paired interval passes when the interval's pessimistic end is below its limit (a gate must
be convinced, not merely unsurprised), fails when even the optimistic end is above it (the
loss is shown), and is undecided in between, a tie at the limit included; with
`bound = "point"` the point estimate alone decides. A rule that cannot be evaluated (no hard
item scored) fails: an error is never a pass. A candidate passes when every rule passes,
fails when any fails, and is undecided otherwise; requiring every rule (and every gated
candidate) to pass is an intersection-union test, so the error of a wrong pass stays at
each interval's one-sided level without a correction (docs/metrics.md).

Every rule on an interval also says what the run could resolve (`Evidence`): the interval's
half-width, the smallest limit it would pass, and the items that would decide it: of the
same mix for a fixed-size run (`harness.analysis.evidence.items_needed`, with the range the
run's own uncertainty spans), of the pool for a sequential one (`sequence_needed`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from harness.analysis.betting import Pool
from harness.analysis.candidate_metrics import GATE_RULES
from harness.analysis.evidence import items_needed, sequence_needed
from harness.analysis.gate_rules import GateRule
from harness.analysis.review import ReviewStatus
from harness.analysis.scorers import reference_free
from harness.records import CandidateMetrics, EvalItem, GateConfig, PairedItem
from harness.records.errors import HarnessError
from harness.records.settings import GateVerdict


class UnknownGateKey(HarnessError):
    """A limit for a key no rule declares."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the run can resolve for a rule on an interval."""

    limit: float  # the rule's limit, in the interval's unit
    resolution: float  # the interval's half-width now
    provable: float  # the smallest limit this run would pass: drops above it are ruled out
    items: int  # eval-set items behind the interval now
    items_needed: int | None  # items of the same mix that decide the rule (None: none can)
    # the range of items_needed over the run's own uncertainty about its discordance
    needed_low: int | None = None
    needed_high: int | None = None
    sequential: bool = False  # items_needed is the pool's, simulated from the sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleResult:
    rule: str  # the [gate] key
    verdict: GateVerdict
    message: str
    evidence: Evidence | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: GateVerdict
    rules: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        """The sentences of the rules that did not pass; every rule's when all pass."""
        open_ = [r.message for r in self.rules if not r.passed]
        return open_ or [r.message for r in self.rules]


def combine(verdicts: Sequence[GateVerdict]) -> GateVerdict:
    """`fail` when any fails, `pass` when all pass, else `undecided`."""
    if "fail" in verdicts or not verdicts:
        return "fail"
    return "pass" if all(v == "pass" for v in verdicts) else "undecided"


class GateNotComputable(HarnessError):
    """A configured rule that the eval set cannot feed: refused before any model runs, so
    nothing is generated only to be thrown away."""


_NEEDS = {
    "reference": "no item is scored against a reference (every item is reference-free)",
    "hard": "no hard item is scored against a reference",
    "free": "no item is reference-free",
    "structured": "no item declares tools or a response_format",
    "distribution": "[generation] distribution is off",
}


def check_computable(
    cfg: GateConfig, items: Sequence[EvalItem], distribution: bool, lm_eval: bool
) -> None:
    """Every active rule can be computed on `items` (lm-eval tasks count as scored items)."""
    scored = [i for i in items if not reference_free(i)]
    have = {
        "reference": bool(scored) or lm_eval,
        "hard": any(i.hard for i in scored) or lm_eval,
        "free": len(scored) < len(items),
        "structured": any(i.tools or i.response_format is not None for i in items),
        "distribution": distribution,
    }
    for rule in GATE_RULES:
        if rule.active(cfg) and rule.needs is not None and not have[rule.needs]:
            raise GateNotComputable(
                f"gate rule {rule.key} cannot be computed on this eval set: {_NEEDS[rule.needs]}"
                "; remove the rule or add items it can judge"
            )


def gate(
    m: CandidateMetrics,
    cfg: GateConfig,
    review: ReviewStatus | None = None,
    paired: Sequence[PairedItem] = (),
    confidence: float = 0.95,
    pools: Mapping[str, Pool] | None = None,
    seed: int = 0,
    partial: str | None = None,
) -> GateResult:
    """The gate's verdict on one candidate; `paired` (its paired items) and the interval's
    `confidence` size the evidence of the rules on intervals; `pools`, a sequential run's
    slices of its pool, make that evidence the sequence's. `partial` (a run on part of its
    eval set, said in a sentence) is a rule that is never met: such a run fails where a rule
    fails (its items are a uniform draw of the pool, so its intervals hold) and is
    undecided otherwise, never a pass."""
    known = {r.key for r in GATE_RULES}
    unknown = sorted(set(cfg.limits) - known)
    if unknown:
        raise UnknownGateKey(f"unknown gate key(s): {', '.join(unknown)}")
    seen = review or ReviewStatus(0, 0, 0, 0, 0, 0)
    rules = []
    for rule in GATE_RULES:
        if rule.active(cfg):
            limit = cfg.limits.get(rule.key, rule.default)
            verdict, message = rule.judge(m, seen, limit, cfg.bound)
            evidence = (
                _evidence(rule, m, paired, float(limit), confidence, pools or {}, seed)
                if isinstance(limit, int | float)
                else None
            )
            rules.append(
                RuleResult(rule=rule.key, verdict=verdict, message=message, evidence=evidence)
            )
    if not rules:
        none = RuleResult(
            rule="gate", verdict="fail", message="No gate rule is set: nothing can pass."
        )
        return GateResult("fail", (none,))
    if partial is not None:
        rules.append(RuleResult(rule="complete", verdict="undecided", message=partial))
    return GateResult(combine([r.verdict for r in rules]), tuple(rules))


def _evidence(
    rule: GateRule,
    m: CandidateMetrics,
    paired: Sequence[PairedItem],
    limit: float,
    confidence: float,
    pools: Mapping[str, Pool],
    seed: int,
) -> Evidence | None:
    if rule.interval is None or rule.per_item is None or not paired:
        return None
    ends = rule.interval(m)
    if ends is None:
        return None
    low, high = ends
    x, w = rule.per_item(paired)
    said = Evidence(
        limit=limit,
        resolution=(high - low) / 2,
        provable=high,
        items=len(paired),
        items_needed=None,
    )
    if rule.key in pools:
        pool = pools[rule.key]
        more = sequence_needed(x, w, pool, limit, confidence, seed)
        # the rule reads a slice of the pool: the pool items that hold that many of them
        scaled = None if more is None or not x else math.ceil(more * len(paired) / len(x))
        return replace(said, items_needed=scaled, sequential=True)
    need = items_needed(x, w, limit, confidence, rule.range)
    if need is None or not x:
        return said
    # The rule reads a slice (the scored items, the hard ones): the eval set of the same
    # mix that holds that many of them.
    share = len(paired) / len(x)
    return replace(
        said,
        items_needed=math.ceil(need.items * share),
        needed_low=math.ceil(need.low * share),
        needed_high=None if need.high is None else math.ceil(need.high * share),
    )


def evidence_sentence(rule: RuleResult) -> str:
    """What the run resolves for a rule on an interval, and what deciding it would take:
    "this run resolves ±3.6 pts (203 items); deciding the 2.00-pt limit needs ≈ 1,668
    items of the same mix". Empty for other rules."""
    e = rule.evidence
    if e is None:
        return ""
    said = f"this run resolves ±{100 * e.resolution:.2f} pts ({e.items:,} items)"
    if rule.verdict == "pass":
        return f"{said} and rules out anything above {100 * e.provable:.2f} pts"
    if rule.verdict == "fail":
        return said
    if e.sequential:
        if e.items_needed is None:
            return f"{said}; continued on the rest of the pool, the sequence would not decide it"
        return (
            f"{said}; continued on the rest of the pool (simulated from the items run), the "
            f"sequence would decide it by ≈ {e.items_needed:,} items in 4 of 5 continuations"
        )
    if e.items_needed is None:
        return f"{said}; the estimate sits at the limit: no number of items decides it"
    deciding = f"deciding the {100 * e.limit:.2f}-pt limit needs ≈ {e.items_needed:,} items"
    spread = ""
    if e.needed_low is not None:
        top = f"{e.needed_high:,}" if e.needed_high is not None else "no upper bound"
        spread = f" ({e.needed_low:,} to {top} over this run's own uncertainty)"
    return f"{said}; {deciding} of the same mix{spread}"


def interval_used(sequential: bool, confidence: float) -> str:
    """Which interval the gate judged, in one sentence for a verdict card."""
    level = f"{100 * confidence:g}%"
    if sequential:
        return (
            f"Intervals judged: {level} confidence sequences over the pool, drawn without "
            "replacement in a seeded random order (betting; valid at every round looked at)."
        )
    return (
        f"Intervals judged: {level} paired betting intervals (valid at any number of items, "
        "weights and flip rate; a tie at the limit is not a pass)."
    )
