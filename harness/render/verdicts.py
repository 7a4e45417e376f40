"""The sentences a verdict card, summary.md, a JUnit case and the terminal say about a rule:
what the run resolves and which interval was judged."""

from __future__ import annotations

from harness.records.gate import RuleResult


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
