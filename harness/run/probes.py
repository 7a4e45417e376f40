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

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from harness.analysis.scorers import scorer_of
from harness.records import EvalItem, TokenStats
from harness.records.codec import from_json, to_json
from harness.run.backends import Backend, Generated
from harness.run.backends.base import TopK
from harness.store.logprobs import LogprobFiles, PackedRows, TopKRows

LOGP_SPAN = 40.0
CODES = 65535

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


class LogprobStore(LogprobFiles):
    """The baseline's log-probs on disk (`harness.store.logprobs`), taken and given back as
    tensors: a row is packed (`pack`) or cut to its top k (`top_k_rows`) on the way in, and
    unpacked on the way out."""

    def append(self, item: int, logp: torch.Tensor) -> None:
        k = self.begin(int(logp.shape[-1]))
        if k is None:
            self.write(item, PackedRows(*pack(logp)))
        else:
            top = top_k_rows(logp, k)
            self.write(item, TopKRows(top.ids.numpy(), top.logp.numpy(), top.tail.numpy()))

    def get(self, item: int) -> torch.Tensor | TopK:
        """One item's log-probs: full rows (float64, renormalised) or top-k rows."""
        rows = self.read(item)
        if isinstance(rows, TopKRows):
            return TopK(
                ids=torch.from_numpy(rows.ids),
                logp=torch.from_numpy(rows.logp),
                tail=torch.from_numpy(rows.tail),
            )
        return unpack(rows.codes, rows.floor, rows.step)


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
            if len(item.reference) != 1 or not scorer_of(item).literal_reference:
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
