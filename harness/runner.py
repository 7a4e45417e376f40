"""The run stage, the only one that touches torch: tokenize once, generate with each model
in turn (one in memory at a time), write `generations/<model>.jsonl`."""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.config import Candidate, RunSettings, noise_floor_name
from harness.distribution import LogprobStore, TokenStats, teacher_forced, token_stats
from harness.generate import cut_at_stop, greedy, prompt_ids
from harness.models import ModelSpec, fingerprint, load
from harness.quantize import QuantizeSpec, quantize
from harness.records import EvalItem, Scorer


class TokenizerMismatch(Exception):
    """A prompt cannot be fed identically: a candidate's tokenizer maps it to other ids than
    the baseline's, or a model's tokenizer cannot render it (no chat template)."""


@dataclass(frozen=True, slots=True)
class Generation:
    item_id: str
    output: str
    output_ids: tuple[int, ...]
    output_tokens: tuple[str, ...] = ()  # each id decoded alone, to show where outputs split
    reference_nll: float | None = None  # mean NLL per token of the single reference, if any


@dataclass(frozen=True, slots=True)
class ModelRun:
    name: str
    generations: tuple[Generation, ...]
    seconds: float


def encode_prompts(
    name: str, items: Sequence[EvalItem], tokenizer: Any, baseline_ids: Sequence[list[int]] | None
) -> list[list[int]]:
    """Prompt ids per item; with `baseline_ids`, stop at the first item that differs."""
    out = []
    for i, item in enumerate(items):
        try:
            ids = prompt_ids(item, tokenizer)
        except ValueError as exc:  # e.g. a tokenizer without a chat template
            first = (str(exc).strip().splitlines() or [""])[0]
            raise TokenizerMismatch(
                f"{item.source}: id {item.id!r}: model {name!r}: {first}"
            ) from exc
        if baseline_ids is not None and ids != baseline_ids[i]:
            raise TokenizerMismatch(
                f"{item.source}: id {item.id!r}: the tokenizer of {name!r} maps this prompt to "
                f"other token ids than the baseline's; the models cannot be fed identical inputs"
            )
        out.append(ids)
    return out


@dataclass(frozen=True, slots=True)
class Forcing:
    """What every model is teacher-forced on: the baseline's prompt and output ids (its
    <eos> included where it stopped on one), and where the baseline's log-probs are."""

    prompts: list[list[int]]
    continuations: list[list[int]]
    store: LogprobStore


def run_model(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: RunSettings,
    baseline_ids: Sequence[list[int]] | None = None,
    while_loaded: Callable[[Any, Any, list[list[int]], list[list[int]]], None] | None = None,
) -> tuple[ModelRun, list[list[int]]]:
    """Generate with one model. With `baseline_ids`, the candidate must tokenize every prompt
    to exactly those ids, and is fed them. `while_loaded(model, tokenizer, prompt_ids,
    output_ids)` runs before the model is freed. Returns the run and the prompt ids used."""
    started = time.monotonic()
    model, tok = load(spec)
    ids = encode_prompts(spec.name, items, tok, baseline_ids)
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
    rows = greedy(
        model, ids, limits, pad_id(tok), tok.eos_token_id, settings.batch_size, desc=spec.name
    )
    gens = tuple(
        Generation(
            item.id,
            cut_at_stop(tok.decode(row, skip_special_tokens=True), settings.stop),
            tuple(row),
            tuple(tok.decode([t]) for t in row),
        )
        for item, row in zip(items, rows, strict=True)
    )
    if while_loaded is not None:
        while_loaded(model, tok, ids, rows)
    del model
    gc.collect()
    return ModelRun(spec.name, gens, time.monotonic() - started), ids


def pad_id(tok: Any) -> int:
    return int(tok.eos_token_id if tok.pad_token_id is None else tok.pad_token_id)


def continuations(rows: Sequence[list[int]], limits: Sequence[int], eos: int) -> list[list[int]]:
    """The generated ids, plus the <eos> that ended a row before its limit."""
    return [
        [*row, eos] if len(row) < cap else list(row) for row, cap in zip(rows, limits, strict=True)
    ]


def write_generations(run: ModelRun, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.name}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for g in run.generations:
            row = {"id": g.item_id, "output": g.output, "output_ids": list(g.output_ids),
                   "output_tokens": list(g.output_tokens)}  # fmt: skip
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class ReadyCandidate:
    """A candidate with a checkpoint on disk (made by `quantize` when the config asks)."""

    spec: ModelSpec
    gated: bool
    fingerprint: str
    quantize: QuantizeSpec | None = None
    calibration_sha256: str | None = None
    quantize_seconds: float = 0.0
    quantize_cached: bool = False
    noise_floor: bool = False  # the baseline itself, run a second time


def noise_floor_candidate(baseline: ModelSpec, baseline_fp: str) -> ReadyCandidate:
    """The baseline again, same settings: what "identical" can mean on this machine."""
    spec = ModelSpec(
        noise_floor_name(baseline.name), baseline.path, baseline.dtype, baseline.device
    )
    return ReadyCandidate(spec, gated=False, fingerprint=baseline_fp, noise_floor=True)


def ready_candidate(
    cand: Candidate, baseline: ModelSpec, baseline_fp: str, cache: Path
) -> ReadyCandidate:
    if cand.model is not None:
        return ReadyCandidate(cand.model, cand.gated, fingerprint(cand.model.path))
    assert cand.quantize is not None  # guaranteed by config parsing
    calibration = f", calibration {cand.quantize.calibration}" if cand.quantize.calibration else ""
    print(
        f"{cand.name}: {cand.quantize.scheme} {cand.quantize.method}{calibration}", file=sys.stderr
    )
    made = quantize(baseline.path, baseline_fp, cand.quantize, cache)
    status = "cached" if made.cached else f"quantized in {made.seconds:.0f}s"
    print(f"{cand.name}: {status}: {made.path}", file=sys.stderr)
    # The quantized model runs with the baseline's device; its dtype is the checkpoint's.
    spec = ModelSpec(cand.name, str(made.path), baseline.dtype, baseline.device)
    return ReadyCandidate(spec, cand.gated, fingerprint(spec.path), cand.quantize,
                          made.calibration_sha256, made.seconds, made.cached)  # fmt: skip


def run_all(
    baseline: ModelSpec, candidates: Sequence[ReadyCandidate], items: Sequence[EvalItem],
    settings: RunSettings, run_dir: Path,
) -> dict[str, float]:  # fmt: skip
    """Generate with the baseline, then each candidate on the baseline's token ids; write
    each model's generations as soon as it is done, and (with `settings.distribution`)
    each candidate's per-token distances to the baseline. Returns seconds per model."""
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
    forcing: list[Forcing] = []

    def store_baseline(model: Any, tok: Any, ids: list[list[int]], rows: list[list[int]]) -> None:
        write_reference_nll(
            model,
            tok,
            items,
            ids,
            settings.batch_size,
            run_dir / "distribution" / f"{baseline.name}.reference.json",
        )
        conts = continuations(rows, limits, tok.eos_token_id)
        store = LogprobStore(run_dir / "scratch" / "baseline-logprobs")
        store.write(teacher_forced(model, ids, conts, pad_id(tok), settings.batch_size))
        forcing.append(Forcing(ids, conts, store))

    def compare_to_baseline(
        name: str,
    ) -> Callable[[Any, Any, list[list[int]], list[list[int]]], None]:
        def run(model: Any, tok: Any, ids: list[list[int]], rows: list[list[int]]) -> None:
            write_reference_nll(
                model,
                tok,
                items,
                ids,
                settings.batch_size,
                run_dir / "distribution" / f"{name}.reference.json",
            )
            f = forcing[0]
            batches = teacher_forced(
                model, f.prompts, f.continuations, pad_id(tok), settings.batch_size
            )
            cand = (logp for batch in batches for logp in batch)
            stats = (
                token_stats(b, c, t)
                for b, c, t in zip(f.store.read(), cand, f.continuations, strict=True)
            )
            write_token_stats(items, stats, run_dir / "distribution" / f"{name}.jsonl")

        return run

    Hook = Callable[[Any, Any, list[list[int]], list[list[int]]], None]
    hook: Hook | None = store_baseline if settings.distribution else None
    base_run, base_ids = run_model(baseline, items, settings, while_loaded=hook)
    write_generations(base_run, run_dir / "generations")
    seconds = {baseline.name: base_run.seconds}
    for cand in candidates:
        hook = compare_to_baseline(cand.spec.name) if settings.distribution else None
        run, _ = run_model(cand.spec, items, settings, baseline_ids=base_ids, while_loaded=hook)
        write_generations(run, run_dir / "generations")
        seconds[cand.spec.name] = run.seconds
    shutil.rmtree(run_dir / "scratch", ignore_errors=True)
    return seconds


def write_reference_nll(
    model: Any,
    tok: Any,
    items: Sequence[EvalItem],
    ids: list[list[int]],
    batch_size: int,
    path: Path,
) -> None:
    """Mean NLL per token of each item's single reference after its prompt (items with
    several references, a regex or no reference have none): the model's perplexity on it."""
    chosen = [
        i for i, it in enumerate(items) if len(it.reference) == 1 and it.scorer is not Scorer.REGEX
    ]
    refs = [list(tok(items[i].reference[0], add_special_tokens=False).input_ids) for i in chosen]
    keep = [(i, r) for i, r in zip(chosen, refs, strict=True) if r]
    batches = teacher_forced(
        model, [ids[i] for i, _ in keep], [r for _, r in keep], pad_id(tok), batch_size
    )
    logps = (lp for batch in batches for lp in batch)
    nll = {}
    for (i, ref), logp in zip(keep, logps, strict=True):
        picked = logp.gather(1, torch.tensor(ref)[:, None])[:, 0]
        nll[items[i].id] = float(-picked.double().mean())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nll) + "\n")


def write_token_stats(items: Sequence[EvalItem], stats: Iterator[TokenStats], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item, s in zip(items, stats, strict=True):
            f.write(json.dumps({"id": item.id} | asdict(s)) + "\n")
