"""The run stage, the only one that touches torch: tokenize once, generate with each model
in turn (one in memory at a time), write `generations/<model>.jsonl`."""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config import Candidate, RunSettings, noise_floor_name
from harness.distribution import LogprobStore, TokenStats
from harness.forcing import BaselineProbe, CandidateProbe, write_json
from harness.generate import cut_at_stop, greedy, pad_id, prompt_ids
from harness.lmeval import LmEvalConfig, Sample, run_tasks, write_samples
from harness.models import ModelSpec, fingerprint, load
from harness.quantize import MARKER, QuantizeSpec, quantize
from harness.records import EvalItem


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
    samples: tuple[Sample, ...] = ()  # lm-eval per-sample results, when tasks are configured


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


Probe = BaselineProbe | CandidateProbe


def run_model(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: RunSettings,
    baseline_ids: Sequence[list[int]] | None = None,
    probe: Probe | None = None,
    lm_eval: LmEvalConfig | None = None,
) -> tuple[ModelRun, list[list[int]]]:
    """Generate with one model. With `baseline_ids`, the candidate must tokenize every prompt
    to exactly those ids, and is fed them. A `probe` sees every batch with its log-probs and
    finishes before the model is freed. Returns the run and the prompt ids used."""
    started = time.monotonic()
    model, tok = load(spec)
    ids = encode_prompts(spec.name, items, tok, baseline_ids)
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
    if probe is not None:
        probe.start(tok)
    rows = greedy(
        model, ids, limits, pad_id(tok), tok.eos_token_id, settings.batch_size, desc=spec.name,
        on_batch=None if probe is None else probe.on_batch, logprobs=probe is not None,
    )  # fmt: skip
    gens = tuple(
        Generation(
            item.id,
            cut_at_stop(tok.decode(row, skip_special_tokens=True), settings.stop),
            tuple(row),
            tuple(tok.decode([t]) for t in row),
        )
        for item, row in zip(items, rows, strict=True)
    )
    if probe is not None:
        probe.finish(model, tok, ids, rows)
    samples = () if lm_eval is None else tuple(run_tasks(model, tok, lm_eval, settings.batch_size))
    del model
    gc.collect()
    return ModelRun(spec.name, gens, time.monotonic() - started, samples), ids


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
    return ReadyCandidate(spec, cand.gated, fingerprint(spec.path, ignore=(MARKER,)), cand.quantize,
                          made.calibration_sha256, made.seconds, made.cached)  # fmt: skip


def run_all(
    baseline: ModelSpec, candidates: Sequence[ReadyCandidate], items: Sequence[EvalItem],
    settings: RunSettings, run_dir: Path, lm_eval: LmEvalConfig | None = None,
) -> dict[str, float]:  # fmt: skip
    """Generate with the baseline, then each candidate on the baseline's token ids; write
    each model's generations as soon as it is done, and (with `settings.distribution`)
    each candidate's per-token distances to the baseline and every model's reference NLLs.
    Returns seconds per model."""
    dist_dir = run_dir / "distribution"

    def save(run: ModelRun, probe: Probe | None) -> None:
        """Everything one model produced, written as soon as it is done."""
        write_generations(run, run_dir / "generations")
        if lm_eval is not None:
            write_samples(run_dir / "lm_eval" / f"{run.name}.jsonl", run.samples)
        if isinstance(probe, CandidateProbe):
            write_token_stats(items, probe.ordered(), dist_dir / f"{run.name}.jsonl")
        if probe is not None:
            write_json(dist_dir / f"{run.name}.reference.json", probe.reference_nll)

    base_probe = None
    if settings.distribution:
        store = LogprobStore(run_dir / "scratch" / "baseline-logprobs")
        base_probe = BaselineProbe(items, store, batch_size=settings.batch_size)
    base_run, base_ids = run_model(baseline, items, settings, probe=base_probe, lm_eval=lm_eval)
    save(base_run, base_probe)
    seconds = {baseline.name: base_run.seconds}
    for cand in candidates:
        probe = (
            None if base_probe is None else CandidateProbe(items, base_probe, settings.batch_size)
        )
        run, _ = run_model(cand.spec, items, settings, base_ids, probe, lm_eval)
        save(run, probe)
        seconds[cand.spec.name] = run.seconds
    shutil.rmtree(run_dir / "scratch", ignore_errors=True)
    return seconds


def write_token_stats(items: Sequence[EvalItem], stats: Sequence[TokenStats], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item, s in zip(items, stats, strict=True):
            f.write(json.dumps({"id": item.id} | asdict(s)) + "\n")
