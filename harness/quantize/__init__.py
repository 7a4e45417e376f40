"""Making candidates, and their one cache.

A `QuantizeSpec` (scheme, method, calibration set) becomes a checkpoint made by an engine
(`llmcompressor.py`: a compressed-tensors checkpoint, the format vLLM serves). Checkpoints are
cached by (baseline fingerprint, recipe, calibration sha256): a rerun with the same inputs
does no quantization work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.records import QuantizeSpec

MARKER = "harness_quantize.json"
# Part of every cache key: bump it when the way a recipe runs changes its result.
RECIPE_VERSION = 2  # 2: calibration samples taken deterministically (no shuffling)
SEED = 0
DEFAULT_CACHE = Path(".cache") / "harness" / "quantized"


class QuantizeError(HarnessError):
    """Quantization could not run; one line saying why."""


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
        from harness.quantize.llmcompressor import run_oneshot

        run_oneshot(baseline, spec, tmp, calibration_texts, SEED)
    except Exception as exc:  # whatever the engine raised: one line, and no half checkpoint
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
