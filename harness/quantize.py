"""Make a quantized candidate with llm-compressor; the only module that imports it.

A `QuantizeSpec` (scheme, method, calibration set) becomes a compressed-tensors checkpoint
(the format vLLM serves). Checkpoints are cached by (baseline fingerprint, recipe,
calibration sha256): a rerun with the same inputs does no quantization work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMES = ("W8A16", "W4A16")
METHODS = ("rtn", "gptq")
MARKER = "harness_quantize.json"
# Part of every cache key: bump it when the way a recipe runs changes its result.
RECIPE_VERSION = 2  # 2: calibration samples taken deterministically (no shuffling)
SEED = 0
DEFAULT_CACHE = Path(".cache") / "harness" / "quantized"


class QuantizeError(Exception):
    """Quantization could not run; one line saying why."""


@dataclass(frozen=True, slots=True)
class QuantizeSpec:
    scheme: str
    method: str
    calibration: str | None = None  # JSONL eval-set file; required by gptq
    samples: int = 128
    max_seq_length: int = 512

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES or self.method not in METHODS:
            raise ValueError(f"unsupported quantization {self.scheme}/{self.method}")
        if (self.method == "gptq") != (self.calibration is not None):
            raise ValueError("gptq needs a calibration set; rtn takes none")

    def recipe_dict(self) -> dict[str, Any]:
        """What defines the result (the calibration by content, not by path)."""
        d = asdict(self)
        d.pop("calibration")
        return d


@dataclass(frozen=True, slots=True)
class Quantized:
    path: Path
    cached: bool
    calibration_sha256: str | None
    seconds: float


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(baseline_fingerprint: str, spec: QuantizeSpec, calibration_sha256: str | None) -> str:
    blob = json.dumps(
        [RECIPE_VERSION, baseline_fingerprint, spec.recipe_dict(), calibration_sha256],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def calibration_texts(path: str) -> list[str]:
    """Texts of a calibration set (eval-set format): each prompt, or a conversation's turns."""
    from harness.evalset import load_evalset

    return [
        item.prompt
        if item.prompt is not None
        else "\n".join(m.content for m in item.messages or ())
        for item in load_evalset([path])
    ]


def _modifier(spec: QuantizeSpec) -> Any:
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    # lm_head stays in full precision, as in llm-compressor's own examples and vLLM's kernels.
    kind = GPTQModifier if spec.method == "gptq" else QuantizationModifier
    return kind(targets="Linear", scheme=spec.scheme, ignore=["lm_head"])


def _run_oneshot(baseline: str, spec: QuantizeSpec, out: Path) -> None:
    # llm-compressor logs every layer at INFO; its own variable still wins when set.
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")
    from llmcompressor import oneshot

    kwargs: dict[str, Any] = {}
    if spec.calibration is not None:
        from datasets import Dataset

        texts = calibration_texts(spec.calibration)
        kwargs = {
            "dataset": Dataset.from_dict({"text": texts}),
            "num_calibration_samples": min(spec.samples, len(texts)),
            "max_seq_length": spec.max_seq_length,
            # llm-compressor shuffles with torch's global generator by default, so two runs
            # would calibrate on different samples; a length-aware, unshuffled pick (and a
            # fixed seed for anything else) makes the same inputs give the same checkpoint.
            "shuffle_calibration_samples": False,
        }
    import torch

    torch.manual_seed(SEED)
    # Paths, not objects: oneshot loads the model and tokenizer itself.
    oneshot(
        model=baseline, processor=baseline, recipe=_modifier(spec), output_dir=str(out), **kwargs
    )


def quantize(
    baseline: str, baseline_fingerprint: str, spec: QuantizeSpec, cache_root: Path = DEFAULT_CACHE
) -> Quantized:
    """The cached checkpoint for (baseline, spec, calibration), made when missing."""
    calib_sha = sha256_file(spec.calibration) if spec.calibration is not None else None
    out = cache_root / cache_key(baseline_fingerprint, spec, calib_sha)
    if (out / MARKER).is_file():
        return Quantized(out, True, calib_sha, 0.0)
    # Build in a temporary sibling and rename: an interrupted run leaves no half checkpoint.
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    try:
        _run_oneshot(baseline, spec, tmp)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise QuantizeError(
            f"quantizing {baseline} ({spec.scheme} {spec.method}): {first}"
        ) from exc
    seconds = time.monotonic() - started
    marker = {
        "spec": asdict(spec), "baseline": baseline, "baseline_fingerprint": baseline_fingerprint,
        "calibration_sha256": calib_sha, "seconds": round(seconds, 1),
        "llmcompressor": _version("llmcompressor"),
        "compressed_tensors": _version("compressed-tensors"),
    }  # fmt: skip
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return Quantized(out, False, calib_sha, seconds)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
