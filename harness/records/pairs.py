"""A baseline and a candidate side by side, per item, and a paired interval."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.records.items import EvalItem
from harness.records.outputs import TokenStats


class Outcome(Enum):
    REGRESSION = "regression"  # baseline right, candidate wrong
    IMPROVEMENT = "improvement"  # baseline wrong, candidate right
    CHANGED = "changed"  # different output, same verdict
    IDENTICAL = "identical"
    UNSCORABLE = "unscorable"  # a score is None: counted, never a silent 0
    # Reference-free items, judged by meaning against the baseline's output (never accuracy):
    EQUIVALENT = "equivalent"  # other words, the same meaning (sentence-embedding similarity)
    DIVERGED = "diverged"  # another meaning


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    output: str
    score: float | None
    output_ids: tuple[int, ...] = ()
    output_tokens: tuple[str, ...] = ()
    reference_nll: float | None = None
    extracted: str | None = None  # the answer the scorer compared, when it differs from output
    cut_off: bool = False  # ended at its token limit: no final answer yet
    prompt_tokens: int | None = None  # the prompt's length in tokens, where the run kept it
    # An item declaring tools or a response_format: why the output breaks the declaration (a
    # malformed call, an undeclared function, arguments or a JSON value outside the schema);
    # None where it keeps it or the item declares nothing
    broken: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """One option of a multiple-choice (loglikelihood) lm-eval sample, for both models."""

    text: str
    baseline_loglikelihood: float
    candidate_loglikelihood: float
    gold: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PairedItem:
    item: EvalItem
    baseline: Side
    candidate: Side
    outcome: Outcome
    similarity: float
    first_divergence: int | None  # first generated token position where the ids differ
    tokens: TokenStats | None = None  # teacher-forced on the baseline's output; None if off
    options: tuple[Option, ...] = ()  # multiple-choice lm-eval samples only
    meaning: float | None = None  # reference-free items: embedding cosine to the baseline's
    # Reference-free items with an answer kind, and items declaring tools or a format:
    # (baseline's answer, candidate's) where they differ; a reference-free item is then
    # diverged whatever the cosine (`harness.analysis.answers`).
    answer_change: tuple[str | None, str | None] | None = None
    # ...and the answer kind they were compared by: an item's own (`number`, `regex`, ...),
    # or one detected on the baseline's output (`detected:number`); None: by meaning alone
    answer_kind: str | None = None

    @property
    def kld_mean(self) -> float | None:
        return (
            sum(self.tokens.kld) / len(self.tokens.kld) if self.tokens and self.tokens.kld else None
        )

    @property
    def first_top1_divergence(self) -> int | None:
        """First output position where the two models' top-1 tokens differ."""
        return None if self.tokens is None else self.tokens.first_top1_divergence

    @property
    def kld_max(self) -> float | None:
        return max(self.tokens.kld) if self.tokens and self.tokens.kld else None


@dataclass(frozen=True, slots=True)
class Interval:
    """A paired comparison of the two models on one slice."""

    baseline: float
    candidate: float
    drop: float
    ci_low: float
    ci_high: float
