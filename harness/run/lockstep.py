"""Exact KLD with no store (`[distribution] mode = "lockstep"`): the baseline is loaded beside
each candidate and teacher-forced on its own outputs again, batch by batch, as the candidate's
probe asks for its rows. Nothing of the baseline's log-probs goes to disk, at the price of
holding two models at once and scoring the baseline once more per candidate.

Whether both fit is checked before anything runs: the baseline's and the largest candidate's
weights plus a batch's logits (both models', with the float64 copies the probes make),
against the memory the kernel says is available. A run that cannot fit is refused with the
numbers, rather than swapping or being killed half-way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.records import EvalItem, ModelSpec
from harness.records.errors import HarnessError
from harness.run.backends import Backend

log = logging.getLogger(__name__)
GIB = 2**30
# Used when a checkpoint names no vocabulary size (a GGUF): Gemma-class, larger than most.
VOCAB_BOUND = 262_144
WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt")


class LockstepRefused(HarnessError):
    """Both models and a batch do not fit in the memory available."""


@dataclass(frozen=True, slots=True)
class Need:
    """What a lockstep run holds at once, in bytes."""

    baseline: int
    candidate: int
    rows: int

    @property
    def total(self) -> int:
        return self.baseline + self.candidate + self.rows


def weights_bytes(path: str) -> int:
    """A checkpoint's weights on disk: a file, or a folder's weight files."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if not p.is_dir():
        return 0
    return sum(f.stat().st_size for f in p.iterdir() if f.suffix in WEIGHTS)


def vocab_size(path: str) -> int:
    try:
        return int(json.loads((Path(path) / "config.json").read_text())["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return VOCAB_BOUND


# What a chat template adds around each message, in characters, at most (role markers and
# turn separators: SmolLM2's `<|im_start|>user\n` ... `<|im_end|>\n` is 23).
TEMPLATE_PER_MESSAGE = 64


def _characters(item: EvalItem) -> int:
    """An upper bound on the prompt's tokens: its characters (a token holds one at least),
    a chat item's messages with what the template adds around each."""
    if item.prompt is not None:
        return len(item.prompt)
    return sum(
        len(m.role.value) + len(m.content) + TEMPLATE_PER_MESSAGE for m in item.messages or ()
    )


def need(
    baseline: ModelSpec,
    candidates: Sequence[ModelSpec],
    items: Sequence[EvalItem],
    batch_size: int,
    max_new_tokens: int,
) -> Need:
    """An upper estimate. A candidate in memory is taken to be as large as the baseline at
    least (a compressed checkpoint may be unpacked when loaded). A batch's logits: every
    position of its longest prompt (a token holds one character at least) and output, over
    the vocabulary, in float32, for both models, plus the float64 rows the probes compare."""
    base = weights_bytes(baseline.path)
    cand = max((max(weights_bytes(c.path), base) for c in candidates), default=0)
    longest = max((_characters(i) for i in items), default=0)
    limit = max((i.token_limit(max_new_tokens) for i in items), default=max_new_tokens)
    vocab = vocab_size(baseline.path)
    rows = batch_size * (longest + limit) * vocab * 4 * 2 + batch_size * limit * vocab * 8 * 2
    return Need(baseline=base, candidate=cand, rows=rows)


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(n: Need, free: int | None) -> None:
    """Refuse with the numbers when `n` is over `free`."""
    said = (
        f"baseline {n.baseline / GIB:.2f} GiB + candidate {n.candidate / GIB:.2f} GiB + a "
        f"batch's rows {n.rows / GIB:.2f} GiB = {n.total / GIB:.2f} GiB"
    )
    if free is None:
        log.warning("lockstep: needs at most %s; the free memory is unknown here", said)
        return
    if n.total > free:
        raise LockstepRefused(
            f'[distribution] mode = "lockstep" needs {said}, and {free / GIB:.2f} GiB is '
            "available: use the stored mode (a top-k store keeps it small), or a smaller "
            "[generation] batch_size"
        )
    log.info("lockstep: needs at most %s of %.2f GiB available", said, free / GIB)


class LockstepRows:
    """The baseline's rows in place of a store: during the baseline's run it keeps only
    which items it saw (its journal records no rows); beside a candidate (`attach`) it
    teacher-forces the baseline on its own outputs, a batch of items at a time, as they are
    asked for."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.index: dict[int, tuple[int, int]] = {}
        self.vocab = 0
        self._backend: Backend | None = None
        self._ids: Sequence[Sequence[int]] = ()
        self._conts: dict[int, tuple[int, ...]] = {}
        self._rows: dict[int, torch.Tensor] = {}

    def append(self, item: int, logp: torch.Tensor) -> None:
        self.index[item] = (0, int(logp.shape[0]))
        self.vocab = int(logp.shape[-1])

    def checkpoint(self) -> dict[str, Any]:
        return {"rows": 0, "vocab": self.vocab, "top_k": None, "sha256": []}

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        return len(states)

    def resume(
        self, rows: int, vocab: int, index: dict[int, tuple[int, int]], top_k: int | None = None
    ) -> None:
        """Nothing was written to resume: only which items were seen."""
        self.index |= index

    def close(self) -> None:
        """Nothing to close."""

    def attach(
        self, backend: Backend, ids: Sequence[Sequence[int]], conts: dict[int, tuple[int, ...]]
    ) -> None:
        self._backend, self._ids, self._conts, self._rows = backend, ids, conts, {}

    def detach(self) -> None:
        self._backend, self._rows = None, {}

    def get(self, item: int) -> torch.Tensor:
        if item not in self._rows:
            if self._backend is None:
                raise RuntimeError("lockstep: the baseline is not loaded")
            todo = [i for i in range(item, item + self.batch_size) if i in self._conts]
            scored = self._backend.score(
                [self._ids[i] for i in todo], [self._conts[i] for i in todo], self.batch_size
            )
            self._rows = {i: logp.double() for i, logp in zip(todo, scored, strict=True)}
        return self._rows[item]
