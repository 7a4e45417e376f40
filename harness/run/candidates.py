"""The models a run compares with the baseline: each candidate with a checkpoint (as
configured, or quantized from the baseline and cached), and the noise floors (the baseline
again; llama.cpp's baseline again in batches)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from harness.records import (
    CandidateSpec,
    CompareConfig,
    GgufSpec,
    ModelSpec,
    OtherRecipe,
    QuantizeSpec,
    ReadyCandidate,
    batched_floor_name,
    noise_floor_name,
)
from harness.records.codec import to_json
from harness.run.backends.base import (
    checkpoint_fingerprint,
)
from harness.run.backends.hf import BOOKKEEPING
from harness.run.backends.llamacpp import LlamaCppSettings
from harness.run.quantize import quantize, quantizer_of

logger = logging.getLogger(__name__)


def noise_floor_candidate(baseline: ModelSpec, baseline_fp: str) -> ReadyCandidate:
    """The baseline again, same settings: what "identical" can mean on this machine."""
    spec = replace(baseline, name=noise_floor_name(baseline.name))
    return ReadyCandidate(spec=spec, gated=False, fingerprint=baseline_fp, noise_floor=True)


def batched_floor_candidate(baseline: ModelSpec, baseline_fp: str, n: int) -> ReadyCandidate:
    """The llama.cpp baseline again, `n` sequences per batch: what batching alone moves."""
    spec = replace(
        baseline,
        name=batched_floor_name(baseline.name, n),
        settings=replace(baseline.settings or LlamaCppSettings(), parallel=n),
    )
    return ReadyCandidate(
        spec=spec, gated=False, fingerprint=baseline_fp, noise_floor=True, batched=n
    )


def ready_candidate(
    cand: CandidateSpec, baseline: ModelSpec, baseline_fp: str, cache: Path | None
) -> ReadyCandidate:
    """A candidate with a checkpoint: as configured, or quantized (cached) from the baseline."""
    if cand.model is not None:
        return ReadyCandidate(
            spec=cand.model,
            gated=cand.gated,
            fingerprint=checkpoint_fingerprint(cand.model.path),
        )
    if cand.quantize is None:  # config parsing gives every candidate one of the two
        raise TypeError(f"candidate {cand.name!r} has neither a checkpoint nor a recipe")
    q = cand.quantize
    calibration = f", calibration {q.calibration}" if q.calibration else ""
    logger.info("%s: %s%s", cand.name, q.describe(), calibration)
    made = quantize(baseline.path, baseline_fp, q, cache)
    status = "cached" if made.cached else f"quantized in {made.seconds:.0f}s"
    logger.info("%s: %s: %s", cand.name, status, made.path)
    quantizer = quantizer_of(q)
    spec = quantizer.candidate(cand.name, made.path, baseline)
    if not isinstance(q, QuantizeSpec | GgufSpec):  # a plug-in's record, kept as it wrote it
        q = OtherRecipe(
            engine=quantizer.name,
            settings=to_json(q),
            description=q.describe(),
            calibration=q.calibration,
        )
    fp = checkpoint_fingerprint(spec.path, ignore=BOOKKEEPING)
    return ReadyCandidate(
        spec=spec,
        gated=cand.gated,
        fingerprint=fp,
        quantize=q,
        calibration_sha256=made.calibration_sha256,
        quantize_seconds=made.seconds,
        quantize_cached=made.cached,
    )


def ready_models(cfg: CompareConfig, baseline_fp: str, cache: Path | None) -> list[ReadyCandidate]:
    """Every model a compare runs besides the baseline, in order: each candidate with its
    checkpoint (quantized and cached where the config asks), then the noise floors the
    config asks for."""
    ready = [ready_candidate(c, cfg.baseline, baseline_fp, cache) for c in cfg.candidates]
    if cfg.noise_floor:
        ready.append(noise_floor_candidate(cfg.baseline, baseline_fp))
    if cfg.noise_floor_batched:
        ready.append(batched_floor_candidate(cfg.baseline, baseline_fp, cfg.noise_floor_batched))
    return ready
