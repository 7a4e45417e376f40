"""What an eval set holds. Input is validated at the edge (`evalset.py`, with the scorer
table of `scorers.py`); `__post_init__` guards the invariants of items built in code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from harness.records.errors import RecordError


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


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    source: Source
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    reference: tuple[str, ...] = ()
    # A name of the scorer table (`harness.analysis.scorers.Scorer`, a str enum): the table decides
    # whether a reference is needed and what it may look like, so adding a scorer is one file.
    scorer: str = "exact"
    difficulty: Difficulty = Difficulty.COMMON
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    max_new_tokens: int | None = None
    extract: str | None = None  # a regex: its first group is the answer the scorer sees

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
