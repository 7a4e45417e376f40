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

That is 2 bytes times the vocabulary per position: for a 128k vocabulary, 1,000 items of
256 tokens would take 65 GB. A top-k store (`[distribution] store`) keeps per position the k largest
log-probs with their ids and the exact log of the rest's mass (8k + 4 bytes). A candidate's
KLD from it is exact over the k ids and merges the rest into one outcome; merging never
increases a KL divergence (log-sum inequality), so it is a lower bound, reported as one. Its
upper side is not bounded: the baseline's rest could sit where the candidate puts almost
nothing. Top-1 agreement, Δp and the baseline's NLL stay exact: under greedy decoding the
baseline's token is its own top 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from harness.analysis.scorers import entry
from harness.records import EvalItem, TokenStats
from harness.records.codec import from_json, to_json
from harness.records.errors import writing
from harness.records.settings import DEFAULT_TOP_K, StoreKind
from harness.run.backends import Backend, Generated
from harness.run.backends.base import TopK

LOGP_SPAN = 40.0
CODES = 65535
GB = 1e9

log = logging.getLogger(__name__)


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


def top_k_rows(logp: torch.Tensor, k: int) -> TopK:
    """Full rows [n, V] -> their k largest log-probs (descending) with ids, and the log of
    the mass outside them, summed from the rows themselves (not 1 minus the k: exact even
    when the k hold all but 1e-20 of it)."""
    logp = logp.double()
    vals, ids = logp.topk(min(k, int(logp.shape[-1])), dim=-1)
    tail = torch.logsumexp(logp.scatter(-1, ids, float("-inf")), dim=-1)
    return TopK(ids=ids, logp=vals, tail=tail)


def tail_logp(cand: TopK) -> torch.Tensor:
    """log of the probability mass outside the top k, per position: the stored one, else 1
    minus the k's sum, floored at 1e-12 (a server's rounding can make the top k sum to a
    hair over 1)."""
    if cand.tail is not None:
        return torch.as_tensor(cand.tail).double()
    inside = cand.logp.double().exp().sum(-1)
    return torch.log((1.0 - inside).clamp_min(1e-12))


def _rest(known: torch.Tensor) -> torch.Tensor:
    """log of 1 minus the summed probabilities of `known` log-probs [n, m], per row."""
    return torch.log((1.0 - known.exp().sum(-1)).clamp_min(1e-300))


def _kld(base: torch.Tensor | TopK, cand: torch.Tensor | TopK) -> tuple[torch.Tensor, int | None]:
    """KL(P_base || Q) per position, and the k it was bounded at (None: exact). With top-k
    rows on either side, outcomes known on both sides count one by one and the rest of the
    vocabulary is merged into one outcome: a lower bound (log-sum inequality)."""
    if not isinstance(base, TopK) and not isinstance(cand, TopK):
        b, c = base.double(), cand.double()
        return (b.exp() * (b - c)).sum(-1), None
    if not isinstance(base, TopK):
        assert isinstance(cand, TopK)
        p_in, q_in = base.double().gather(1, cand.ids.long()), cand.logp.double()
        p_rest, q_rest = _rest(p_in), tail_logp(cand)
        k = cand.shape[1]
    elif not isinstance(cand, TopK):
        p_in, q_in = base.logp.double(), cand.double().gather(1, base.ids.long())
        p_rest, q_rest = tail_logp(base), _rest(q_in)
        k = base.shape[1]
    else:
        # Both top k: the known outcomes are the ids both name; each side's other ids join
        # its rest.
        same = base.ids.long()[:, :, None] == cand.ids.long()[:, None, :]  # [n, kb, kc]
        hit = same.any(-1)
        neg = torch.tensor(float("-inf"), dtype=torch.float64)
        q_at = torch.where(same, cand.logp.double()[:, None, :], neg).logsumexp(-1)
        p_all = base.logp.double()
        p_in = torch.where(hit, p_all, neg)
        q_in = torch.where(hit, q_at, neg)
        p_out = torch.where(hit, neg, p_all)
        q_out = torch.where(same.any(1), neg, cand.logp.double())
        p_rest = torch.logaddexp(tail_logp(base), p_out.logsumexp(-1))
        q_rest = torch.logaddexp(tail_logp(cand), q_out.logsumexp(-1))
        inside = torch.where(hit, p_in.exp() * (p_in - q_in), torch.zeros_like(p_in))
        return inside.sum(-1) + _rest_term(p_rest, q_rest), min(base.shape[1], cand.shape[1])
    return (p_in.exp() * (p_in - q_in)).sum(-1) + _rest_term(p_rest, q_rest), k


def _rest_term(p_rest: torch.Tensor, q_rest: torch.Tensor) -> torch.Tensor:
    """The merged outcome's P log(P / Q); 0 where P is 0 (the k held the whole row)."""
    term = p_rest.exp() * (p_rest - q_rest)
    return torch.where(p_rest == float("-inf"), torch.zeros_like(term), term)


def _top1(row: torch.Tensor | TopK) -> torch.Tensor:
    if isinstance(row, TopK):
        return row.ids.long().gather(1, row.logp.double().argmax(-1, keepdim=True))[:, 0]
    return row.double().argmax(-1)


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
    base_logp: torch.Tensor | TopK, cand_logp: torch.Tensor | TopK, targets: Sequence[int]
) -> TokenStats:
    """Both models' log-probs at the n positions that predict `targets`, each full [n, V]
    rows or top-k (`TopK`: a top-k baseline store, a server's candidate). With top-k on
    either side the KLD is a lower bound (`_kld`) and `kld_top_k` says at which k."""
    nll_b = picked_nll(base_logp, targets)
    nll_c = picked_nll(cand_logp, targets)
    kld, top_k = _kld(base_logp, cand_logp)
    return TokenStats(
        kld=tuple(kld.clamp_min(0.0).tolist()),
        top1_agree=tuple((_top1(base_logp) == _top1(cand_logp)).tolist()),
        delta_p=tuple((nll_c.neg().exp() - nll_b.neg().exp()).tolist()),
        nll_base=tuple(nll_b.tolist()),
        nll_cand=tuple(nll_c.tolist()),
        kld_top_k=top_k,
    )


class RowStore(Protocol):
    """Where a candidate's probe gets the baseline's rows: a `LogprobStore` on disk, or the
    baseline itself loaded beside the candidate (`harness.run.lockstep`)."""

    index: dict[int, tuple[int, int]]

    def append(self, item: int, logp: torch.Tensor) -> None: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def intact(self, states: Sequence[dict[str, Any]]) -> int: ...

    def resume(
        self, rows: int, vocab: int, index: dict[int, tuple[int, int]], top_k: int | None = None
    ) -> None: ...

    def close(self) -> None: ...

    def get(self, item: int) -> torch.Tensor | TopK: ...


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a baseline store will keep (`[distribution]`), decided once the first rows show
    the vocabulary: `positions` is how many rows the run can write at most (each item's
    token limit, plus its stop id)."""

    store: StoreKind = "full"
    top_k: int = DEFAULT_TOP_K
    max_bytes: float = float("inf")
    positions: int = 0

    def decide(self, vocab: int) -> int | None:
        """The k to keep, or None for full rows."""
        if self.store == "top-k" or (
            self.store == "auto" and self.positions * full_row_bytes(vocab) > self.max_bytes
        ):
            return min(self.top_k, vocab)
        return None


def full_row_bytes(vocab: int) -> int:
    return 2 * vocab + 8


def top_k_row_bytes(k: int) -> int:
    return 8 * k + 4


def _top_k_dtype(k: int) -> np.dtype:
    return np.dtype([("ids", "<i4", (k,)), ("logp", "<f4", (k,)), ("tail", "<f4")])


class LogprobStore:
    """The baseline's log-probs on disk, addressed by item index: full packed rows
    (`<stem>.codes`, uint16, and `<stem>.rows`, float32 floor and step per row) or top-k rows
    (`<stem>.topk`: per row k int32 ids, k float32 log-probs, the float32 log of the rest),
    and `<stem>.json` (vocab size, k, item -> first row and row count). Appended batch by batch
    as generation goes, read back through memory maps: memory stays flat as the eval set
    grows."""

    def __init__(self, stem: Path, plan: StorePlan | None = None) -> None:
        self.stem = stem
        self.plan = plan or StorePlan()
        self.index: dict[int, tuple[int, int]] = {}
        self.vocab = 0
        self.top_k: int | None = None  # decided by the plan at the first rows
        self._rows = 0
        self._files: list[Any] | None = None
        self._maps: list[np.ndarray] | None = None
        self._segment: list[Any] = []  # sha256 of what was appended since the last
        # checkpoint, per file: a journal line records it, and a resume checks it

    @classmethod
    def open(cls, stem: Path) -> LogprobStore:
        """A store written earlier (and closed), for reading."""
        meta = json.loads(Path(f"{stem}.json").read_text())
        store = cls(stem)
        store.vocab = int(meta["vocab"])
        store.top_k = None if meta.get("top_k") is None else int(meta["top_k"])
        store.index = {int(k): (int(v[0]), int(v[1])) for k, v in meta["index"].items()}
        store._rows = max((a + n for a, n in store.index.values()), default=0)
        return store

    def _layout(self, vocab: int, top_k: int | None) -> list[tuple[Path, int]]:
        """Its files with their bytes per row."""
        if top_k is None:
            return [
                (Path(f"{self.stem}.codes"), 2 * vocab),
                (Path(f"{self.stem}.rows"), 8),
            ]
        return [(Path(f"{self.stem}.topk"), top_k_row_bytes(top_k))]

    def _open(self, mode: str) -> None:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self._files = [open(f, mode) for f, _ in self._layout(self.vocab, self.top_k)]  # noqa: SIM115
        self._segment = [hashlib.sha256() for _ in self._files]

    def _encode(self, logp: torch.Tensor) -> list[bytes]:
        if self.top_k is None:
            codes, floor, step = pack(logp)
            return [codes.tobytes(), np.stack([floor, step], axis=1).astype(np.float32).tobytes()]
        top = top_k_rows(logp, self.top_k)
        rows = np.zeros(int(logp.shape[0]), dtype=_top_k_dtype(self.top_k))
        rows["ids"], rows["logp"], rows["tail"] = top.ids, top.logp, top.tail
        return [rows.tobytes()]

    def append(self, item: int, logp: torch.Tensor) -> None:
        if self._files is None:
            self.vocab = int(logp.shape[-1])
            self.top_k = self.plan.decide(self.vocab)
            self._announce()
            self._open("wb")
        assert self._files is not None
        for f, h, chunk in zip(self._files, self._segment, self._encode(logp), strict=True):
            with writing(f.name):
                f.write(chunk)
            h.update(chunk)
        self.index[item] = (self._rows, int(logp.shape[0]))
        self._rows += int(logp.shape[0])

    def _announce(self) -> None:
        n, full = self.plan.positions, full_row_bytes(self.vocab)
        if not n:
            return
        if self.top_k is None:
            log.info(
                "baseline log-probs: full rows of %d, at most %.2f GB for %d positions",
                self.vocab,
                n * full / GB,
                n,
            )
        else:
            log.info(
                "baseline log-probs: top-%d rows, at most %.3f GB for %d positions "
                "(full rows would take %.2f GB); KLDs are lower bounds",
                self.top_k,
                n * top_k_row_bytes(self.top_k) / GB,
                n,
                n * full / GB,
            )

    def checkpoint(self) -> dict[str, Any]:
        """Flush and fsync what was appended: the rows a journal line may then count on, with
        the sha256 of the bytes appended since the last checkpoint."""
        for f in self._files or []:
            with writing(f.name):
                f.flush()
                os.fsync(f.fileno())
        sums = [h.hexdigest() for h in self._segment]
        self._segment = [hashlib.sha256() for _ in self._segment]
        return {"rows": self._rows, "vocab": self.vocab, "top_k": self.top_k, "sha256": sums}

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        """How many of a journal's checkpoints (`states`, in order) the files on disk still
        hold byte for byte: a resume keeps those batches and makes the rest again."""
        if not states:
            return 0
        top_k = states[0].get("top_k")
        layout = self._layout(int(states[0]["vocab"]), top_k)
        if not all(f.is_file() for f, _ in layout):
            return 0
        start = 0
        handles = [open(f, "rb") for f, _ in layout]  # noqa: SIM115
        try:
            for k, state in enumerate(states):
                n = int(state["rows"]) - start
                if n < 0 or state.get("top_k") != top_k:
                    return k
                got = [
                    hashlib.sha256(h.read(n * size)).hexdigest()
                    for h, (_, size) in zip(handles, layout, strict=True)
                ]
                if got != state.get("sha256"):
                    return k
                start = int(state["rows"])
        finally:
            for h in handles:
                h.close()
        return len(states)

    def resume(
        self, rows: int, vocab: int, index: dict[int, tuple[int, int]], top_k: int | None = None
    ) -> None:
        """Continue a store a killed run left: keep its first `rows` rows (what its journal
        counted), cut whatever it wrote after, and append from there."""
        if rows == 0:
            return
        self.vocab, self.top_k, self.index, self._rows = vocab, top_k, dict(index), rows
        layout = self._layout(vocab, top_k)
        if any(f.stat().st_size < rows * size for f, size in layout):
            raise OSError(f"{self.stem}: shorter than its journal says")
        self._open("r+b")
        assert self._files is not None
        for f, (_, size) in zip(self._files, layout, strict=True):
            f.truncate(rows * size)
            f.seek(rows * size)

    def close(self) -> None:
        for f in self._files or []:
            with writing(f.name):
                f.close()
        self._files = None
        meta = {
            "vocab": self.vocab,
            "top_k": self.top_k,
            "index": {str(k): v for k, v in self.index.items()},
        }
        with writing(f"{self.stem}.json"):
            Path(f"{self.stem}.json").write_text(json.dumps(meta) + "\n")
        if self.plan.positions:
            size = self.size()
            log.info(
                "baseline log-probs: %.3f GB on disk (%d bytes) for %d positions",
                size / GB,
                size,
                self._rows,
            )

    def size(self) -> int:
        """Bytes its row files take."""
        return sum(f.stat().st_size for f, _ in self._layout(self.vocab, self.top_k) if f.is_file())

    def get(self, item: int) -> torch.Tensor | TopK:
        """One item's log-probs: full rows (float64, renormalised) or top-k rows."""
        start, n = self.index[item]
        if self._maps is None:
            if self.top_k is None:
                self._maps = [
                    np.memmap(
                        f"{self.stem}.codes",
                        dtype=np.uint16,
                        mode="r",
                        shape=(self._rows, self.vocab),
                    ),
                    np.memmap(
                        f"{self.stem}.rows", dtype=np.float32, mode="r", shape=(self._rows, 2)
                    ),
                ]
            else:
                kind = _top_k_dtype(self.top_k)
                self._maps = [
                    np.memmap(f"{self.stem}.topk", dtype=kind, mode="r", shape=(self._rows,))
                ]
        if self.top_k is not None:
            rows = np.asarray(self._maps[0][start : start + n])
            raw = rows["ids"]
            if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= self.vocab):
                raise OSError(f"{self.stem}.topk: a token id outside the vocabulary")
            ids = torch.from_numpy(raw.astype(np.int64))
            return TopK(
                ids=ids,
                logp=torch.from_numpy(rows["logp"].astype(np.float64)),
                tail=torch.from_numpy(rows["tail"].astype(np.float64)),
            )
        codes, meta = self._maps
        return unpack(
            np.asarray(codes[start : start + n]),
            np.asarray(meta[start : start + n, 0]),
            np.asarray(meta[start : start + n, 1]),
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
        context = backend.context_length
        beyond = 0
        for i, item in enumerate(self.items):
            if len(item.reference) != 1 or not entry(item).literal_reference:
                continue
            ref = backend.encode(item.reference[0])
            if not ref:
                continue
            if context is not None and len(ids[i]) + len(ref) > context:
                # a perplexity over positions the model cannot attend to measures nothing,
                # and teacher-forcing it costs quadratic time: left out, and counted
                beyond += 1
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
        if beyond:
            log.warning(
                "%d reference(s) do not fit the model's %d-token context after their prompt: "
                "their reference perplexity is left out",
                beyond,
                context,
            )
        return out


class BaselineProbe:
    """Packs the baseline's generation log-probs to disk; keeps its rows for the candidates."""

    def __init__(self, items: Sequence[EvalItem], store: RowStore, batch_size: int) -> None:
        self.store = store
        self.stop_ids: tuple[int, ...] = ()  # set by `start`, once the model is loaded
        self.reference = _ReferenceNll(items, batch_size)
        self.conts: dict[int, tuple[int, ...]] = {}
        self.reference_nll: dict[str, float] = {}

    @classmethod
    def restored(
        cls,
        items: Sequence[EvalItem],
        store: RowStore,
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
            last = states[-1]
            self.store.resume(int(last["rows"]), int(last["vocab"]), index, last.get("top_k"))

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
