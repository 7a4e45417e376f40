"""Where the real models and the llama.cpp build are, and the lanes of tests that need them:
each a lane mark (`real`, `engine`: what `make test-fast` leaves out) with the skip that says
why when `make real-model` or `make llama-cpp` has not run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.records.home import quantized
from harness.run.llamacpp_home import bin_dir

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "model"
SMOLLM = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
MINILM = REPO / ".cache" / "harness" / "models" / "all-MiniLM-L6-v2"
REAL = REPO / "evalsets" / "real"
# the quantized checkpoints every run on this machine shares (the harness home's)
QUANTIZED = quantized()

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Needs:
    """A lane and its skip, together: `@NEEDS_X` on a test, `*NEEDS_X.marks` in a module's
    `pytestmark`."""

    lane: pytest.MarkDecorator
    skip: pytest.MarkDecorator

    @property
    def marks(self) -> tuple[pytest.MarkDecorator, pytest.MarkDecorator]:
        return (self.lane, self.skip)

    def __call__(self, test: T) -> T:
        marked: T = self.lane(self.skip(test))
        return marked


NEEDS_REAL_MODEL = Needs(
    pytest.mark.real,
    pytest.mark.skipif(
        not (SMOLLM / "harness_fetch.json").is_file() or not MINILM.is_dir(),
        reason="the real model is not fetched (make real-model)",
    ),
)
NEEDS_EMBEDDER = Needs(
    pytest.mark.real,
    pytest.mark.skipif(
        not MINILM.is_dir(), reason="the embedding model is not fetched (make real-model)"
    ),
)
NEEDS_LLAMA_CPP = Needs(
    pytest.mark.engine,
    pytest.mark.skipif(
        not (bin_dir() / "llama-server").is_file(),
        reason="llama.cpp is not built (make llama-cpp)",
    ),
)
