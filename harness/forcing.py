"""Distribution probes that ride along with generation (one model in memory at a time).

Greedy decoding is teacher forcing on a model's own output, so the baseline's log-probs at
every generated token come straight from its generation (`BaselineProbe`), packed to disk as
they are produced. A candidate's generation gives its log-probs on the baseline's tokens for
free wherever it produced the same tokens; only items where it diverged get a teacher-forced
pass on the baseline's ids (`CandidateProbe`). Per-item reference perplexities reuse the same
log-probs when the output starts with the reference, and run a teacher-forced pass otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from harness.distribution import LogprobStore, TokenStats, teacher_forced, token_stats
from harness.generate import pad_id
from harness.records import EvalItem, Scorer


def continuation(row: list[int], logp_rows: int, eos: int) -> list[int]:
    """The generated ids, plus the <eos> that ended the row (when it has a log-prob row)."""
    return [*row, eos] if logp_rows > len(row) else list(row)


class _ReferenceNll:
    """Mean NLL per token of each item's single (non-regex) reference after its prompt."""

    def __init__(self, items: Sequence[EvalItem], batch_size: int) -> None:
        self.items, self.batch_size = items, batch_size
        self.own: dict[int, torch.Tensor] = {}  # NLL of each generated token, per item

    def record(self, i: int, cont: list[int], logp: torch.Tensor) -> None:
        self.own[i] = -logp.gather(1, torch.tensor(cont)[:, None])[:, 0].double()

    def finish(
        self, model: Any, tok: Any, ids: Sequence[list[int]], rows: Sequence[list[int]]
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        pending: list[tuple[int, list[int]]] = []
        for i, item in enumerate(self.items):
            if len(item.reference) != 1 or item.scorer is Scorer.REGEX:
                continue
            ref = list(tok(item.reference[0], add_special_tokens=False).input_ids)
            if not ref:
                continue
            if rows[i][: len(ref)] == ref and i in self.own:
                out[item.id] = float(self.own[i][: len(ref)].mean())
            else:
                pending.append((i, ref))
        batches = teacher_forced(
            model,
            [ids[i] for i, _ in pending],
            [r for _, r in pending],
            pad_id(tok),
            self.batch_size,
        )
        for (i, ref), logp in zip(pending, (lp for b in batches for lp in b), strict=True):
            out[self.items[i].id] = float(
                -logp.gather(1, torch.tensor(ref)[:, None]).double().mean()
            )
        return out


class BaselineProbe:
    """Packs the baseline's generation log-probs to disk; keeps its rows for the candidates."""

    def __init__(self, items: Sequence[EvalItem], store: LogprobStore, batch_size: int) -> None:
        self.store = store
        self.eos = -1  # set by `start`, once the tokenizer is loaded
        self.reference = _ReferenceNll(items, batch_size)
        self.conts: dict[int, list[int]] = {}
        self.reference_nll: dict[str, float] = {}

    def start(self, tok: Any) -> None:
        self.eos = int(tok.eos_token_id)

    def on_batch(
        self, idx: list[int], rows: list[list[int]], lps: list[torch.Tensor] | None
    ) -> None:
        assert lps is not None  # the probe asks greedy for log-probs
        for i, row, lp in zip(idx, rows, lps, strict=True):
            self.conts[i] = continuation(row, lp.shape[0], self.eos)
            self.store.append(i, lp)
            self.reference.record(i, self.conts[i], lp)

    def finish(self, model: Any, tok: Any, ids: list[list[int]], rows: list[list[int]]) -> None:
        self.store.close()
        self.reference_nll = self.reference.finish(model, tok, ids, rows)


class CandidateProbe:
    """Per-token distances to the baseline: from the candidate's own generation where its
    tokens match the baseline's, from a teacher-forced pass where they diverge."""

    def __init__(self, items: Sequence[EvalItem], base: BaselineProbe, batch_size: int) -> None:
        self.base, self.batch_size = base, batch_size
        self.reference = _ReferenceNll(items, batch_size)
        self.stats: dict[int, TokenStats] = {}
        self.pending: list[int] = []
        self.reference_nll: dict[str, float] = {}

    def start(self, tok: Any) -> None:
        if int(tok.eos_token_id) != self.base.eos:
            raise ValueError("the candidate's <eos> token id differs from the baseline's")

    def on_batch(
        self, idx: list[int], rows: list[list[int]], lps: list[torch.Tensor] | None
    ) -> None:
        assert lps is not None
        for i, row, lp in zip(idx, rows, lps, strict=True):
            own = continuation(row, lp.shape[0], self.base.eos)
            self.reference.record(i, own, lp)
            if own == self.base.conts[i]:
                self.stats[i] = token_stats(self.base.store.get(i), lp, own)
            else:
                self.pending.append(i)

    def finish(self, model: Any, tok: Any, ids: list[list[int]], rows: list[list[int]]) -> None:
        conts = [self.base.conts[i] for i in self.pending]
        batches = teacher_forced(
            model, [ids[i] for i in self.pending], conts, pad_id(tok), self.batch_size
        )
        for i, logp in zip(self.pending, (lp for b in batches for lp in b), strict=True):
            self.stats[i] = token_stats(self.base.store.get(i), logp, self.base.conts[i])
        self.reference_nll = self.reference.finish(model, tok, ids, rows)

    def ordered(self) -> list[TokenStats]:
        return [self.stats[i] for i in range(len(self.stats))]


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) + "\n")
