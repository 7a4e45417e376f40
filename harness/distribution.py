"""Token-level distance between the baseline's and a candidate's output distributions.

For every token the baseline generated, both models are teacher-forced on exactly the
baseline's prompt + output ids. Per position: KL(P_base || P_cand) over the full vocabulary,
whether the top-1 tokens agree, Δp of the baseline's token, and both models' NLL of it.

One model is in memory at a time, so the baseline's log-probs go to disk first, streamed
batch by batch, in a compact form (`pack`): per row, uint16 codes on a linear grid from
`floor = max(min, max - LOGP_SPAN)` to the row's max, plus that floor and the step as
float32 — the scheme llama.cpp uses for its KL-divergence base files. The grid step is at most
LOGP_SPAN / 65535 ≈ 6.1e-4 nats, so each log-prob is off by at most ≈ 3.1e-4 nats and the KLD
by well under 1e-3 (a test checks it against float64). Probabilities below e^-LOGP_SPAN
relative to the top token are clamped to the floor: they weigh less than 1e-17 in the sum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Per generated token of one item."""

    kld: tuple[float, ...]
    top1_agree: tuple[bool, ...]
    delta_p: tuple[float, ...]  # p_cand(token) - p_base(token)
    nll_base: tuple[float, ...]
    nll_cand: tuple[float, ...]

    @property
    def first_top1_divergence(self) -> int | None:
        return next((i for i, ok in enumerate(self.top1_agree) if not ok), None)


def token_stats(
    base_logp: torch.Tensor, cand_logp: torch.Tensor, targets: Sequence[int]
) -> TokenStats:
    """Both [n, V] log-prob tensors at the n positions that predict `targets`."""
    b, c = base_logp.double(), cand_logp.double()
    kld = (b.exp() * (b - c)).sum(-1).clamp_min(0.0)
    idx = torch.tensor(list(targets), dtype=torch.long)[:, None]
    nll_b, nll_c = -b.gather(1, idx)[:, 0], -c.gather(1, idx)[:, 0]
    return TokenStats(
        kld=tuple(kld.tolist()),
        top1_agree=tuple((b.argmax(-1) == c.argmax(-1)).tolist()),
        delta_p=tuple((nll_c.neg().exp() - nll_b.neg().exp()).tolist()),
        nll_base=tuple(nll_b.tolist()),
        nll_cand=tuple(nll_c.tolist()),
    )


@torch.inference_mode()
def teacher_forced(
    model: Any, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
    pad_id: int, batch_size: int,
) -> Iterator[list[torch.Tensor]]:  # fmt: skip
    """Per batch, each item's log-probs [len(continuation), V] (float32, on the CPU) at the
    positions that predict its continuation tokens. Right padding: a causal model's earlier
    positions never see it."""
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        rows = [
            list(p) + list(c)
            for p, c in zip(
                prompts[start : start + batch_size],
                continuations[start : start + batch_size],
                strict=True,
            )
        ]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        out = []
        for j, (p, c) in enumerate(
            zip(
                prompts[start : start + batch_size],
                continuations[start : start + batch_size],
                strict=True,
            )
        ):
            sl = logits[j, len(p) - 1 : len(p) - 1 + len(c)]
            out.append(torch.log_softmax(sl, dim=-1).cpu())
        yield out


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

    def append(self, item: int, logp: torch.Tensor) -> None:
        if self._files is None:
            self.stem.parent.mkdir(parents=True, exist_ok=True)
            self._files = (open(f"{self.stem}.codes", "wb"), open(f"{self.stem}.rows", "wb"))  # noqa: SIM115
        codes, floor, step = pack(logp)
        self._files[0].write(codes.tobytes())
        self._files[1].write(np.stack([floor, step], axis=1).astype(np.float32).tobytes())
        self.vocab = int(logp.shape[-1])
        self.index[item] = (self._rows, int(logp.shape[0]))
        self._rows += int(logp.shape[0])

    def close(self) -> None:
        if self._files is not None:
            for f in self._files:
                f.close()
            self._files = None
        meta = {"vocab": self.vocab, "index": {str(k): v for k, v in self.index.items()}}
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
        return unpack(np.asarray(codes[start : start + n]), np.asarray(rows[start : start + n, 0]),
                      np.asarray(rows[start : start + n, 1]))  # fmt: skip
