"""A gate rule's outcome as results.json keeps it: its verdict, its sentence and, for a rule
on an interval, what the run could resolve."""

from __future__ import annotations

from dataclasses import dataclass

from harness.records.settings import GateVerdict


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
