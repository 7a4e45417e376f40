"""Before anything is quantized or loaded: every recipe's inputs and needs, every model's
device, and every prompt plus its token limit within every context known without loading
weights."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from harness.records import (
    CandidateSpec,
    EvalItem,
    GenerationSettings,
    ModelSpec,
)
from harness.records.errors import HarnessError
from harness.run.backends import engine_class
from harness.run.backends.base import (
    TokenizerMismatch,
    check_answered,
)
from harness.run.feeding import prompt_problem
from harness.run.plan import token_limits
from harness.run.quantize import quantizer_of
from harness.run.quantize.quantizers import QuantizeRecipe

logger = logging.getLogger(__name__)


class PromptTooLong(HarnessError):
    """A prompt and its token limit do not fit the model's context."""


def check_context(
    name: str,
    context: int | None,
    items: Sequence[EvalItem],
    lengths: Sequence[int],
    limits: Sequence[int],
) -> None:
    """Never truncate silently: the first item whose prompt plus max_new_tokens exceeds the
    model's context is an error naming it."""
    if context is None:
        return
    for item, n, limit in zip(items, lengths, limits, strict=True):
        if n + limit > context:
            raise PromptTooLong(
                f"{item.source}: id {item.id!r}: {n} prompt tokens + max_new_tokens {limit} = "
                f"{n + limit} exceed the context of {name!r} ({context} tokens)"
            )


def preflight(
    baseline: ModelSpec,
    candidates: Sequence[CandidateSpec],
    items: Sequence[EvalItem],
    settings: GenerationSettings,
) -> None:
    """Before anything is quantized or run: every model's device exists, and every item's
    prompt (tokenized as the baseline tokenizes it: every model is fed those ids) plus its
    max_new_tokens fits every model's context, as far as that is known without loading
    weights (run_model checks again once each model is loaded)."""
    for cand in candidates:  # cheapest first: what would fail after minutes of quantizing
        if cand.quantize is not None:
            check_recipe(baseline, cand.name, cand.quantize)
    base = engine_class(baseline.backend).preflight(baseline)
    contexts = [(baseline.name, base.context)]
    for cand in candidates:
        if cand.model is not None:
            known = engine_class(cand.model.backend).preflight(cand.model)
            contexts.append((cand.name, known.context))
            if known.answers is not None:
                check_answered(cand.name, items, known.answers)
        elif cand.quantize is not None:
            quantizer = quantizer_of(cand.quantize)
            contexts.append((cand.name, quantizer.context(baseline, base.context)))
    if base.prompt_ids is None or all(c is None for _, c in contexts):
        return
    lengths = []
    for item in items:
        try:
            lengths.append(len(base.prompt_ids(item)))
        except ValueError as exc:  # e.g. a tokenizer without a chat template
            raise TokenizerMismatch(
                f"{item.source}: id {item.id!r}: model {baseline.name!r}: "
                f"{prompt_problem(item, exc)}"
            ) from exc
    limits = token_limits(items, settings)
    for name, context in contexts:
        check_context(name, context, items, lengths, limits)


def check_recipe(baseline: ModelSpec, name: str, spec: QuantizeRecipe) -> None:
    """What a candidate's quantization needs, checked before any rung is made: its input
    files, then what its quantizer needs (llama.cpp's tools, group sizes that divide every
    layer)."""
    quantizer = quantizer_of(spec)
    files = {"calibration set": spec.calibration, **quantizer.inputs(spec)}
    for what, path in files.items():
        if path is not None and not Path(path).is_file():
            raise HarnessError(f"candidate {name!r}: {what} {path}: no such file")
    try:
        quantizer.check(baseline, spec)
    except HarnessError as exc:  # the recipe in words, unless the message says it already
        said = spec.describe() in str(exc)
        raise HarnessError(
            f"candidate {name!r}{'' if said else f' ({spec.describe()})'}: {exc}"
        ) from None
