"""Per-token distribution probes, riding along with generation (one model in memory at a time).

Greedy decoding is teacher forcing on a model's own output, so the baseline's log-probs at
every generated token come straight from its generation (`BaselineProbe`), packed to disk as
they are produced. A candidate's generation gives its log-probs on the baseline's tokens for
free wherever it produced the same tokens; only items where it diverged get a teacher-forced
pass on the baseline's ids (`CandidateProbe`). Per-item reference perplexities reuse the same
log-probs when the output starts with the reference, and run a teacher-forced pass otherwise.

Per position: KL(P_base || P_cand) over the full vocabulary, whether the top-1 tokens agree,
Δp of the baseline's token, and both models' NLL of it.

The baseline's log-probs go to disk in a compact form (`pack`): per row, uint16 codes on a
linear grid from `floor = max(min, max - LOGP_SPAN)` to the row's max, plus that floor and
the step as float32 — the scheme llama.cpp uses for its KL-divergence base files. The grid
step is at most LOGP_SPAN / 65535 ≈ 6.1e-4 nats, so each log-prob is off by at most ≈ 3.1e-4
nats and the KLD by well under 1e-3 (a test checks it against float64). Probabilities below
e^-LOGP_SPAN relative to the top token are clamped to the floor: they weigh less than 1e-17.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from harness.analysis.scorers import entry
from harness.records import EvalItem, TokenStats
from harness.records.codec import from_json, to_json
from harness.records.errors import writing
from harness.run.backends import Backend, Generated
from harness.run.backends.base import TopK

LOGP_SPAN = 40.0
CODES = 65535


def pack(logp: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-probs [n, V] -> (uint16 codes [n, V], floor [n], step [n])."""
    logp = logp.double()
    top = logp.max(dim=-1).values
    floor = torch.maximum(logp.min(dim=-1).values, top - LOGP_SPAN)
    step = ((top - floor) / CODES).clamp_min(1e-30)
    codes = torch.round((logp.clamp_min(floor[:, None]) - floor[:, None]) / step[:, None])
    return (
        codes.to(torch.int32).numpy().astype(np.uint16),
        floor.float().numpy(),
        step.float().numpy(),
    )


def unpack(codes: np.ndarray, floor: np.ndarray, step: np.ndarray) -> torch.Tensor:
    """Inverse of `pack`, renormalised so each row is a distribution again (float64)."""
    logp = (
        torch.from_numpy(codes.astype(np.float64))
        * torch.from_numpy(step.astype(np.float64))[:, None]
    )
    logp = logp + torch.from_numpy(floor.astype(np.float64))[:, None]
    return logp - torch.logsumexp(logp, dim=-1, keepdim=True)


def tail_logp(cand: TopK) -> torch.Tensor:
    """log of the probability mass outside the top k, per position (floored at 1e-12: a
    server's rounding can make the top k sum to a hair over 1)."""
    inside = cand.logp.double().exp().sum(-1)
    return torch.log((1.0 - inside).clamp_min(1e-12))


def picked_nll(logp: torch.Tensor | TopK, targets: Sequence[int]) -> torch.Tensor:
    """NLL of each target token. From top-k rows: exact where the target is among the k or
    the engine reported it; otherwise the target had at most min(smallest top-k, tail)
    probability, so that bound is used and the NLL is a lower bound."""
    idx = torch.tensor(list(targets), dtype=torch.long)
    if not isinstance(logp, TopK):
        return -logp.double().gather(1, idx[:, None])[:, 0]
    if logp.target is not None:
        return -logp.target.double()
    hit = logp.ids == idx[:, None]
    inside = torch.where(hit, logp.logp.double(), torch.zeros_like(logp.logp, dtype=torch.float64))
    bound = torch.minimum(logp.logp.double().min(-1).values, tail_logp(logp))
    return -torch.where(hit.any(-1), inside.sum(-1), bound)


def token_stats(
    base_logp: torch.Tensor, cand_logp: torch.Tensor | TopK, targets: Sequence[int]
) -> TokenStats:
    """Both models' log-probs at the n positions that predict `targets`: the baseline's full
    [n, V] rows, the candidate's full rows or top-k (`TopK`). With top-k, KL(P_base || Q) is
    taken over the k tokens plus one bucket for the rest of the vocabulary: merging outcomes
    never increases a KL divergence, so this is a lower bound of the true KLD."""
    b = base_logp.double()
    nll_b = -b.gather(1, torch.tensor(list(targets), dtype=torch.long)[:, None])[:, 0]
    nll_c = picked_nll(cand_logp, targets)
    top_k = None
    if isinstance(cand_logp, TopK):
        top_k = cand_logp.shape[1]
        q_in, ids = cand_logp.logp.double(), cand_logp.ids.long()
        p_in = b.gather(1, ids)
        p_tail = torch.log((1.0 - p_in.exp().sum(-1)).clamp_min(1e-300))
        q_tail = tail_logp(cand_logp)
        kld = (p_in.exp() * (p_in - q_in)).sum(-1) + p_tail.exp() * (p_tail - q_tail)
        cand_top = ids.gather(1, q_in.argmax(-1, keepdim=True))[:, 0]
    else:
        c = cand_logp.double()
        kld = (b.exp() * (b - c)).sum(-1)
        cand_top = c.argmax(-1)
    return TokenStats(
        kld=tuple(kld.clamp_min(0.0).tolist()),
        top1_agree=tuple((b.argmax(-1) == cand_top).tolist()),
        delta_p=tuple((nll_c.neg().exp() - nll_b.neg().exp()).tolist()),
        nll_base=tuple(nll_b.tolist()),
        nll_cand=tuple(nll_c.tolist()),
        kld_top_k=top_k,
    )


class LogprobStore:
    """The baseline's packed log-probs on disk, addressed by item index: `<stem>.codes`
    (uint16), `<stem>.rows` (float32 floor and step per row) and `<stem>.json` (vocab size,
    item -> first row and row count). Appended batch by batch as generation goes, read back
    through memory maps: memory stays flat as the eval set grows."""

    def __init__(self, stem: Path) -> None:
        self.stem = stem
        self.index: dict[int, tuple[int, int]] = {}
        self.vocab = 0
        self._rows = 0
        self._files: tuple[Any, Any] | None = None
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        self._segment = (hashlib.sha256(), hashlib.sha256())  # what was appended since the
        # last checkpoint: a journal line records it, and a resume checks it

    @classmethod
    def open(cls, stem: Path) -> LogprobStore:
        """A store written earlier (and closed), for reading."""
        meta = json.loads(Path(f"{stem}.json").read_text())
        store = cls(stem)
        store.vocab = int(meta["vocab"])
        store.index = {int(k): (int(v[0]), int(v[1])) for k, v in meta["index"].items()}
        store._rows = max((a + n for a, n in store.index.values()), default=0)
        return store

    def append(self, item: int, logp: torch.Tensor) -> None:
        if self._files is None:
            self.stem.parent.mkdir(parents=True, exist_ok=True)
            self._files = (open(f"{self.stem}.codes", "wb"), open(f"{self.stem}.rows", "wb"))  # noqa: SIM115
        codes, floor, step = pack(logp)
        data = (codes.tobytes(), np.stack([floor, step], axis=1).astype(np.float32).tobytes())
        for f, h, chunk in zip(self._files, self._segment, data, strict=True):
            with writing(f.name):
                f.write(chunk)
            h.update(chunk)
        self.vocab = int(logp.shape[-1])
        self.index[item] = (self._rows, int(logp.shape[0]))
        self._rows += int(logp.shape[0])

    def checkpoint(self) -> dict[str, Any]:
        """Flush and fsync what was appended: the rows a journal line may then count on, with
        the sha256 of the bytes appended since the last checkpoint."""
        if self._files is not None:
            for f in self._files:
                with writing(f.name):
                    f.flush()
                    os.fsync(f.fileno())
        sums = [h.hexdigest() for h in self._segment]
        self._segment = (hashlib.sha256(), hashlib.sha256())
        return {"rows": self._rows, "vocab": self.vocab, "sha256": sums}

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        """How many of a journal's checkpoints (`states`, in order) the files on disk still
        hold byte for byte: a resume keeps those batches and makes the rest again."""
        codes, meta = Path(f"{self.stem}.codes"), Path(f"{self.stem}.rows")
        if not (codes.is_file() and meta.is_file()):
            return 0
        start = 0
        with open(codes, "rb") as fc, open(meta, "rb") as fm:
            for k, state in enumerate(states):
                rows, vocab = int(state["rows"]), int(state["vocab"])
                n = rows - start
                if n < 0:
                    return k
                got = [
                    hashlib.sha256(fc.read(n * vocab * 2)).hexdigest(),
                    hashlib.sha256(fm.read(n * 8)).hexdigest(),
                ]
                if got != state.get("sha256"):
                    return k
                start = rows
        return len(states)

    def resume(self, rows: int, vocab: int, index: dict[int, tuple[int, int]]) -> None:
        """Continue a store a killed run left: keep its first `rows` rows (what its journal
        counted), cut whatever it wrote after, and append from there."""
        if rows == 0:
            return
        self.vocab, self.index, self._rows = vocab, dict(index), rows
        codes, meta = Path(f"{self.stem}.codes"), Path(f"{self.stem}.rows")
        if codes.stat().st_size < rows * vocab * 2 or meta.stat().st_size < rows * 8:
            raise OSError(f"{self.stem}: shorter than its journal says")
        self._files = (open(codes, "r+b"), open(meta, "r+b"))  # noqa: SIM115
        for f, size in zip(self._files, (rows * vocab * 2, rows * 8), strict=True):
            f.truncate(size)
            f.seek(size)

    def close(self) -> None:
        if self._files is not None:
            for f in self._files:
                with writing(f.name):
                    f.close()
            self._files = None
        meta = {"vocab": self.vocab, "index": {str(k): v for k, v in self.index.items()}}
        with writing(f"{self.stem}.json"):
            Path(f"{self.stem}.json").write_text(json.dumps(meta) + "\n")

    def get(self, item: int) -> torch.Tensor:
        """One item's log-probs (float64, renormalised)."""
        start, n = self.index[item]
        if self._maps is None:
            shape = (self._rows, self.vocab)
            self._maps = (
                np.memmap(f"{self.stem}.codes", dtype=np.uint16, mode="r", shape=shape),
                np.memmap(f"{self.stem}.rows", dtype=np.float32, mode="r", shape=(self._rows, 2)),
            )
        codes, rows = self._maps
        return unpack(
            np.asarray(codes[start : start + n]),
            np.asarray(rows[start : start + n, 0]),
            np.asarray(rows[start : start + n, 1]),
        )


class _ReferenceNll:
    """Mean NLL per token of each item's single literal reference after its prompt."""

    def __init__(self, items: Sequence[EvalItem], batch_size: int) -> None:
        self.items, self.batch_size = items, batch_size
        self.own: dict[int, torch.Tensor] = {}  # NLL of each generated token, per item

    def record(self, i: int, cont: Sequence[int], logp: torch.Tensor | TopK) -> None:
        self.own[i] = picked_nll(logp, cont)

    def state(self, batch: list[Generated]) -> dict[str, list[float]]:
        return {str(g.index): self.own[g.index].tolist() for g in batch if g.index in self.own}

    def restore(self, state: dict[str, list[float]]) -> None:
        for i, nll in state.items():
            self.own[int(i)] = torch.tensor(nll, dtype=torch.float64)

    def finish(
        self, backend: Backend, ids: Sequence[list[int]], rows: Sequence[Sequence[int]]
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        pending: list[tuple[int, list[int]]] = []
        for i, item in enumerate(self.items):
            if len(item.reference) != 1 or not entry(item).literal_reference:
                continue
            ref = backend.encode(item.reference[0])
            if not ref:
                continue
            if list(rows[i][: len(ref)]) == ref and i in self.own:
                out[item.id] = float(self.own[i][: len(ref)].mean())
            else:
                pending.append((i, ref))
        forced = backend.score(
            [ids[i] for i, _ in pending], [r for _, r in pending], self.batch_size
        )
        for (i, ref), logp in zip(pending, forced, strict=True):
            out[self.items[i].id] = float(picked_nll(logp, ref).mean())
        return out


class BaselineProbe:
    """Packs the baseline's generation log-probs to disk; keeps its rows for the candidates."""

    def __init__(self, items: Sequence[EvalItem], store: LogprobStore, batch_size: int) -> None:
        self.store = store
        self.stop_ids: tuple[int, ...] = ()  # set by `start`, once the model is loaded
        self.reference = _ReferenceNll(items, batch_size)
        self.conts: dict[int, tuple[int, ...]] = {}
        self.reference_nll: dict[str, float] = {}

    @classmethod
    def restored(
        cls,
        items: Sequence[EvalItem],
        store: LogprobStore,
        batch_size: int,
        stop_ids: Sequence[int],
        conts: Sequence[Sequence[int]],
    ) -> BaselineProbe:
        """A finished baseline probe read back (from the run cache): what candidates need."""
        probe = cls(items, store, batch_size)
        probe.stop_ids = tuple(stop_ids)
        probe.conts = {i: tuple(c) for i, c in enumerate(conts)}
        return probe

    def start(self, backend: Backend) -> None:
        self.stop_ids = backend.stop_ids

    def on_batch(self, batch: list[Generated]) -> None:
        for g in batch:
            self.conts[g.index] = g.continuation
            self.store.append(g.index, g.logprobs)
            self.reference.record(g.index, g.continuation, g.logprobs)

    def state(self, batch: list[Generated]) -> dict[str, Any]:
        """What a journal keeps of a finished batch (the store flushed to disk first)."""
        index = {str(g.index): self.store.index[g.index] for g in batch}
        return {"own": self.reference.state(batch), "index": index} | self.store.checkpoint()

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        return self.store.intact(states)

    def restore(self, states: Sequence[dict[str, Any]], conts: dict[int, tuple[int, ...]]) -> None:
        """Back to where a killed run's journal ends: its batches' continuations, NLLs and
        packed rows (anything the store holds past them is cut)."""
        self.conts.update(conts)
        index: dict[int, tuple[int, int]] = {}
        for state in states:
            self.reference.restore(state["own"])
            index |= {int(i): (int(a), int(n)) for i, (a, n) in state["index"].items()}
        if states:
            self.store.resume(int(states[-1]["rows"]), int(states[-1]["vocab"]), index)

    def finish(self, backend: Backend, ids: list[list[int]], rows: list[tuple[int, ...]]) -> None:
        self.store.close()
        self.reference_nll = self.reference.finish(backend, ids, rows)


class CandidateProbe:
    """Per-token distances to the baseline: from the candidate's own generation where its
    tokens match the baseline's, from a teacher-forced pass where they diverge."""

    def __init__(self, items: Sequence[EvalItem], base: BaselineProbe, batch_size: int) -> None:
        self.base, self.batch_size = base, batch_size
        self.reference = _ReferenceNll(items, batch_size)
        self.stats: dict[int, TokenStats] = {}
        self.pending: list[int] = []
        self.reference_nll: dict[str, float] = {}

    def start(self, backend: Backend) -> None:
        """Nothing to check: every model stops on the baseline's stop ids, whatever eos its
        own tokenizer names (results.json notes one that differs)."""

    def on_batch(self, batch: list[Generated]) -> None:
        for g in batch:
            self.reference.record(g.index, g.continuation, g.logprobs)
            if g.continuation == self.base.conts[g.index]:
                base = self.base.store.get(g.index)
                self.stats[g.index] = token_stats(base, g.logprobs, g.continuation)
            else:
                self.pending.append(g.index)

    def state(self, batch: list[Generated]) -> dict[str, Any]:
        """What a journal keeps of a finished batch."""
        mine = {g.index for g in batch}
        return {
            "own": self.reference.state(batch),
            "stats": {str(i): to_json(self.stats[i]) for i in sorted(mine & self.stats.keys())},
            "pending": [i for i in self.pending if i in mine],
        }

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        """Its state is all in the journal's lines, checked there."""
        return len(states)

    def restore(self, states: Sequence[dict[str, Any]], conts: dict[int, tuple[int, ...]]) -> None:
        for state in states:
            self.reference.restore(state["own"])
            self.stats |= {int(i): from_json(TokenStats, v) for i, v in state["stats"].items()}
            self.pending += state["pending"]

    def finish(self, backend: Backend, ids: list[list[int]], rows: list[tuple[int, ...]]) -> None:
        conts = [self.base.conts[i] for i in self.pending]
        forced = backend.score([ids[i] for i in self.pending], conts, self.batch_size)
        for i, logp in zip(self.pending, forced, strict=True):
            self.stats[i] = token_stats(self.base.store.get(i), logp, self.base.conts[i])
        self.reference_nll = self.reference.finish(backend, ids, rows)

    def ordered(self) -> list[TokenStats]:
        return [self.stats[i] for i in range(len(self.stats))]


class Probe(Protocol):
    """What sees a model's generation batch by batch, with its log-probs: the baseline's and
    a candidate's probes here, the mining probe of `harness.run.mining`."""

    def start(self, backend: Backend) -> None: ...

    def on_batch(self, batch: list[Generated]) -> None: ...

    def state(self, batch: list[Generated]) -> dict[str, Any]: ...

    def intact(self, states: Sequence[dict[str, Any]]) -> int: ...

    def restore(
        self, states: Sequence[dict[str, Any]], conts: dict[int, tuple[int, ...]]
    ) -> None: ...

    def finish(
        self, backend: Backend, ids: list[list[int]], rows: list[tuple[int, ...]]
    ) -> None: ...
