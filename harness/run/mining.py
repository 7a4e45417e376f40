"""The baseline's own uncertainty over a traffic pool: one greedy run of the baseline that keeps,
per item, the signals that predict where a quantized model flips (flips concentrate where the
baseline's top-1/top-2 margin is small, Dutta et al. 2024, arXiv 2407.09141; high-KLD
positions coincide with high next-token entropy).

Per item, over the positions the baseline generated (its stop token included): the smallest
and the mean top-1 minus top-2 probability, the mean entropy of the next-token distribution
(nats), and the prompt and output lengths in tokens. Only these numbers are kept, never the
log-probs (a pool of 10,000 requests would need ~100 GB of them at a 49k vocabulary). The run
goes through the run cache: a killed run resumes batch by batch, and drawing again with
another size or seed reads the signals back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from harness.records import DistributionSettings, EvalItem, GenerationSettings, ModelSpec
from harness.records.errors import HarnessError
from harness.run.backends import Backend, engine_class
from harness.run.backends.base import Generated, TopK, checkpoint_fingerprint
from harness.run.plan import baseline_plan
from harness.store.runcache import MODEL, ModelSession, RunCache

logger = logging.getLogger(__name__)


class MiningError(HarnessError):
    """The baseline cannot give the signals (an engine without log-probs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSignals:
    id: str
    prompt_tokens: int
    output_tokens: int  # generated, without the stop token
    min_margin: float | None  # None: nothing was generated
    mean_margin: float | None
    mean_entropy: float | None  # None also where the engine returned only its top k

    def value(self, signal: str) -> float | None:
        value: float | None = getattr(self, signal)
        return value


def token_signals(logp: torch.Tensor | TopK) -> tuple[float, float, float | None] | None:
    """(smallest margin, mean margin, mean entropy) over the rows of one item's log-probs
    ([n, V], or a server's top k: its entropy is not known); None for no rows."""
    if isinstance(logp, TopK):
        top = torch.as_tensor(logp.logp, dtype=torch.float64)
        if top.shape[0] == 0 or top.shape[1] < 2:
            return None
        two = torch.topk(top, 2, dim=-1).values.exp()
        margin = two[:, 0] - two[:, 1]
        return float(margin.min()), float(margin.mean()), None
    if logp.shape[0] == 0:
        return None
    logp = logp.double()
    two = torch.topk(logp, 2, dim=-1).values.exp()
    margin = two[:, 0] - two[:, 1]
    p = logp.exp()
    entropy = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
    return float(margin.min()), float(margin.mean()), float(entropy.mean())


class SignalProbe:
    """Sees every batch of the baseline's generation and keeps each item's signals (a probe of
    `harness.run.generation.greedy_rows`; its journal state is the signals themselves)."""

    def __init__(self) -> None:
        self.found: dict[int, tuple[float, float, float | None] | None] = {}

    def start(self, backend: Backend) -> None:
        pass

    def on_batch(self, batch: list[Generated]) -> None:
        for g in batch:
            self.found[g.index] = token_signals(g.logprobs)

    def state(self, batch: list[Generated]) -> dict[str, Any]:
        return {str(g.index): self.found[g.index] for g in batch}

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        return len(states)  # nothing on disk beside the journal itself

    def restore(self, states: Sequence[dict[str, Any]], conts: dict[int, tuple[int, ...]]) -> None:
        for state in states:
            for i, v in state.items():
                self.found[int(i)] = None if v is None else (float(v[0]), float(v[1]), v[2])

    def finish(self, backend: Backend, ids: list[list[int]], rows: list[tuple[int, ...]]) -> None:
        pass


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def mine(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    cache: RunCache,
) -> list[ItemSignals]:
    """Every item's signals, from one baseline run over the pool (read back from the run cache
    when the same baseline ran the same pool with the same settings; a server's answers can
    change behind the same name, so a server baseline is mined afresh every time)."""
    engine = engine_class(spec.backend)
    caps = engine.capabilities
    if not caps.full_vocab_logprobs and not caps.top_k:
        raise MiningError(f"{spec.name}: the {spec.backend} engine returns no log-probs to mine")
    settings = replace(settings, distribution=False)
    fingerprint = checkpoint_fingerprint(spec.path)
    plan = baseline_plan(
        spec, fingerprint, items, settings, None, DistributionSettings(), role="signals"
    )
    if plan.cache_key is None:
        return _signals(items, _mined(spec, items, settings, None))
    with cache.session(plan.cache_key, f"{spec.name} (signals)") as session:
        if session.found is None:
            rows = _mined(spec, items, settings, session)
            session.commit(rows)
        else:
            logger.info("%s: signals read back from the run cache (no generation)", spec.name)
        assert session.found is not None
        _, meta = session.found
    return _signals(items, meta)


def _mined(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    session: ModelSession | None,
) -> dict[str, Any]:
    """One run of the baseline with the signal probe: its meta and per-item rows (written
    into the run-cache `session`'s work folder when there is one)."""
    from harness.run.execute import _meta, write_model
    from harness.run.generation import run_model

    probe = SignalProbe()
    run, fed = run_model(spec, items, settings, probe=probe, session=session)
    if session is not None:
        write_model(session.work, replace(run, name=MODEL), items, None, None, None)
    rows = []
    for i, gen in enumerate(run.generations):
        mined = probe.found.get(i)
        rows.append(
            {
                "prompt_tokens": len(fed.ids[i]),
                "output_tokens": len(gen.output_ids),
                "signals": None if mined is None else list(mined),
            }
        )
    return _meta(run) | {"items": rows}


def _signals(items: Sequence[EvalItem], meta: dict[str, Any]) -> list[ItemSignals]:
    out = []
    for item, row in zip(items, meta["items"], strict=True):
        found: list[float | None] = row["signals"] or [None, None, None]
        out.append(
            ItemSignals(
                id=item.id,
                prompt_tokens=int(row["prompt_tokens"]),
                output_tokens=int(row["output_tokens"]),
                min_margin=_finite(found[0]),
                mean_margin=_finite(found[1]),
                mean_entropy=_finite(found[2]),
            )
        )
    return out


def signal_rows(signals: Sequence[ItemSignals]) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "prompt_tokens": s.prompt_tokens,
            "output_tokens": s.output_tokens,
            "min_margin": s.min_margin,
            "mean_margin": s.mean_margin,
            "mean_entropy": s.mean_entropy,
        }
        for s in signals
    ]
