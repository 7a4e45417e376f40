"""Batched greedy generation with left padding, on token ids fixed before any model runs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import transformers
from tqdm import tqdm

from harness.config import RunSettings
from harness.records import EvalItem


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, or its <eos> where it has none (as for many base models)."""
    return int(tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id)


def prompt_ids(item: EvalItem, tokenizer: Any) -> list[int]:
    """Token ids of an item's prompt; `messages` go through the tokenizer's chat template."""
    if item.messages is not None:
        conversation = [{"role": m.role.value, "content": m.content} for m in item.messages]
        text = tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False).input_ids)
    return list(tokenizer(item.prompt).input_ids)


# Called once per batch with (item indices, output rows, log-probs per row or None): the
# log-probs [len(row) (+1 when the row ended on <eos>), V] at each generated position.
BatchHook = Callable[[list[int], list[list[int]], list[torch.Tensor] | None], None]


@torch.inference_mode()
def greedy(
    model: Any,
    ids: Sequence[Sequence[int]],
    limits: Sequence[int],
    pad_id: int,
    eos_id: int,
    batch_size: int,
    desc: str | None = None,
    on_batch: BatchHook | None = None,
    logprobs: bool = False,
) -> list[list[int]]:
    """Greedy continuation of each id list, stopping at <eos> or its own token limit.
    The output excludes the prompt and the <eos>; rows come back in input order.
    Batches are formed over the inputs sorted by (length, limit), the same way for every
    model, so little is padded and a batch stops when its similar rows are done.
    `desc` shows a progress bar; `on_batch` sees each batch as it is done, with the
    generation's own log-probs when `logprobs` (greedy decoding is teacher forcing on the
    model's own output, so those are the distributions the distance metrics need)."""
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), limits[i]))
    out: dict[int, list[int]] = {}
    device = next(model.parameters()).device
    starts = range(0, len(ids), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=desc is None, file=sys.stderr):
        chosen = order[start : start + batch_size]
        batch, caps = [ids[i] for i in chosen], [limits[i] for i in chosen]
        width = max(len(r) for r in batch)
        input_ids = torch.tensor(
            [[pad_id] * (width - len(r)) + list(r) for r in batch], device=device
        )
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
        # An explicit config: a checkpoint's own generation_config.json (sampling, repetition
        # penalty...) must not make two models decode differently.
        decoding = transformers.GenerationConfig(
            max_new_tokens=max(caps), do_sample=False, num_beams=1,
            pad_token_id=pad_id, eos_token_id=eos_id,
            output_logits=logprobs, return_dict_in_generate=True,
        )  # fmt: skip
        result = model.generate(
            input_ids=input_ids, attention_mask=mask, generation_config=decoding
        )
        generated = result.sequences[:, width:].tolist()
        steps = torch.stack(result.logits, dim=1).float() if logprobs else None
        rows, lps = [], []
        for j, (row, cap) in enumerate(zip(generated, caps, strict=True)):
            row = row[:cap]
            ended = eos_id in row
            rows.append(row[: row.index(eos_id)] if ended else row)
            if steps is not None:
                n = len(rows[-1]) + (1 if ended else 0)
                lps.append(torch.log_softmax(steps[j, :n], dim=-1).cpu())
        for i, row in zip(chosen, rows, strict=True):
            out[i] = row
        if on_batch is not None:
            on_batch(chosen, rows, lps if logprobs else None)
    return [out[i] for i in range(len(ids))]


def generate_texts(
    model: Any, tokenizer: Any, items: Sequence[EvalItem], settings: RunSettings
) -> list[str]:
    """Greedy outputs of `items` as the runner makes them (decoded without special tokens,
    cut at the stop strings), in item order; no distribution probes."""
    ids = [prompt_ids(item, tokenizer) for item in items]
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
    rows = greedy(
        model, ids, limits, pad_id(tokenizer), tokenizer.eos_token_id, settings.batch_size
    )
    return [
        cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), settings.stop) for row in rows
    ]


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string (greedy decoding is causal, so cutting after
    the fact gives what stopping early would have given)."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
