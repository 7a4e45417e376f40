"""What an eval set holds. Input is validated at the edge (`evalset.py`, with the scorer
table of `scorers.py`); `__post_init__` guards the invariants of items built in code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from harness.records.errors import RecordError
from harness.records.schema import setting


class Difficulty(Enum):
    COMMON = "common"
    HARD = "hard"


class Role(Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


# Weights when an item gives none: a loss on a hard case hurts three times as much.
DEFAULT_WEIGHT = {Difficulty.COMMON: 1.0, Difficulty.HARD: 3.0}


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Source:
    """Where an item came from, for error messages: `path:line`."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalItem:
    """One eval-set line. Its fields are declared here, with the doc the eval-set format page
    shows (`make docs`); `harness.inputs.evalset` reads a line against them."""

    id: str = setting(doc="unique across all loaded files", nonempty=True)
    source: Source  # the file and line it was read from (not a field of the line)
    prompt: str | None = setting(
        None,
        doc="raw text, fed as is (the tokenizer adds its special tokens); exactly one of "
        "`prompt` and `messages`",
        nonempty=True,
    )
    messages: tuple[Message, ...] | None = setting(
        None,
        doc="rendered with the tokenizer's chat template, identically for both models",
        means='a non-empty list of {"role": system/user/assistant, "content": "..."}',
    )
    reference: tuple[str, ...] = setting(
        (),
        doc="acceptable answer(s); reference scorers need one, `agreement` takes none",
        means="a non-empty string, or a non-empty list of them",
    )
    # A name of the scorer table (`harness.analysis.scorers.Scorer`, a str enum): the table decides
    # whether a reference is needed and what it may look like, so adding a scorer is one file.
    scorer: str = setting(
        "exact",
        doc="how an output is scored: a scorer below, or an installed plug-in's",
        means="a scorer's name",
    )
    difficulty: Difficulty = setting(
        Difficulty.COMMON,
        doc="slices the report; hard items weigh more",
        means="one of common, hard",
    )
    weight: float = setting(
        1.0,
        doc="how much a loss on this item hurts (default 1 for common, 3 for hard)",
        gt=0,
    )
    tags: tuple[str, ...] = setting(
        (), doc="slices (task family, capability); `answer:<kind>` says how to read the answer"
    )
    max_new_tokens: int | None = setting(
        None, doc="overrides the run's [generation] max_new_tokens", gt=0
    )
    extract: str | None = setting(
        None,
        doc="runs before the scorer: its first group (or whole match) is the answer scored",
        means="a non-empty regular expression",
    )
    logged_output: str | None = setting(
        None,
        doc="the answer production served for this request (`harness traffic import` keeps it)",
        means="a string",
    )

    def __post_init__(self) -> None:
        if not self.id:
            raise RecordError(f"{self.source}: empty id")
        if (self.prompt is None) == (self.messages is None):
            raise RecordError(f"{self.source}: id {self.id!r}: give exactly one of prompt/messages")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise RecordError(f"{self.source}: id {self.id!r}: weight must be finite and > 0")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise RecordError(f"{self.source}: id {self.id!r}: max_new_tokens must be > 0")

    @property
    def hard(self) -> bool:
        return self.difficulty is Difficulty.HARD
