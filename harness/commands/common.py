"""What the commands share: flag types and helps, and the verdict lines a compare, a
report and a review import print (their exit code)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.records.results import Results
from harness.render.verdicts import evidence_sentence
from harness.shell.exits import EXIT_ERROR, EXIT_FAIL, EXIT_OK

RUNS_HELP = "model runs kept and resumed from (default: runs/ in the harness home)"
CACHE_HELP = "quantized checkpoints (default: quantized/ in the harness home, ~/.cache/harness)"


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def report_verdicts(results: Results, out: Path) -> int:
    print(f"report: {out / 'report.html'}")
    if results.baseline_note is not None:
        print(f"NOTE  {results.baseline_note}")
    for note in results.determinism:
        print(note)
    for c in results.candidates:
        label = (
            "batching noise floor"
            if c.info.batched
            else "noise floor"
            if c.noise_floor
            else "gated"
            if c.gated
            else "not gated"
        )
        print(f"{c.verdict.upper():4}  {c.name} ({label})")
        for reason in c.reasons:
            print(f"      - {reason}")
        for rule in c.rules:
            if rule.evidence is not None and not rule.passed:
                print(f"        {rule.rule}: {evidence_sentence(rule)}")
    if results.ladder is not None:
        return report_ladder(results)
    failed = any(c.gated and c.verdict != "pass" for c in results.candidates)
    return EXIT_FAIL if failed else EXIT_OK


def report_ladder(results: Results) -> int:
    """The ladder's table, its answer and the release decision (which is the exit code)."""
    from harness.render.markdown import ladder_table

    ladder = results.ladder
    if ladder is None:
        return EXIT_ERROR
    print()
    print("\n".join(ladder_table(ladder)))
    print()
    print(ladder.answer)
    for cliff in ladder.cliffs:
        print(
            f"cliff ({cliff.slice}; exploratory): {cliff.heavier} -> {cliff.lighter}: drop "
            f"{100 * cliff.before:.1f} -> {100 * cliff.after:.1f} points"
        )
    print(f"ladder: {ladder.decision.upper()}: {ladder.decision_reason}")
    return EXIT_OK if ladder.decision == "pass" else EXIT_FAIL
