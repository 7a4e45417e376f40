"""Making candidates, and their one cache.

A candidate's `quantize` table is the settings record of a quantizer
(`quantizers.QUANTIZERS`: llm-compressor's `QuantizeSpec` becomes a compressed-tensors
checkpoint, llama.cpp's `GgufSpec` a GGUF file; a plug-in adds its own). Results are cached
by (baseline fingerprint, recipe, calibration sha256, input files' sha256): a rerun with the
same inputs does no quantization work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from harness.records import QuantizeSpec, home
from harness.records.codec import to_json
from harness.records.errors import FULL, DiskFull, HarnessError
from harness.run.llamacpp_home import VERSION
from harness.run.quantize.quantizers import QUANTIZERS, Quantizer, QuantizeRecipe, quantizer_of
from harness.store import entry
from harness.store.filelock import hold
from harness.store.sealed import sha256_file

MARKER = "harness_quantize.json"
# Part of every cache key: bump it when the way a recipe runs changes its result.
RECIPE_VERSION = 2  # 2: calibration samples taken deterministically (no shuffling)
SEED = 0

logger = logging.getLogger(__name__)
__all__ = ["QUANTIZERS", "QuantizeError", "Quantized", "Quantizer", "quantize", "quantizer_of"]


class QuantizeError(HarnessError):
    """Quantization could not run; one line saying why."""


@dataclass(frozen=True, slots=True)
class Quantized:
    path: Path
    cached: bool
    calibration_sha256: str | None
    seconds: float


def _input_sha(path: str | None, what: str) -> str | None:
    """The sha256 of an input file of a recipe; a missing one is one line, not a traceback."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise QuantizeError(f"{what} {path}: no such file")
    return sha256_file(path)


def cache_key(
    baseline_fingerprint: str,
    spec: QuantizeRecipe,
    calibration_sha256: str | None,
    recipe_sha256: str | None = None,
) -> str:
    blob = json.dumps(
        [
            RECIPE_VERSION,
            baseline_fingerprint,
            spec.recipe_dict(),
            calibration_sha256,
            recipe_sha256,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def calibration_texts(path: str) -> list[str]:
    """Texts of a calibration set (eval-set format): each prompt, or a conversation's turns."""
    from harness.inputs.evalset import load_evalset

    return [
        item.prompt
        if item.prompt is not None
        else "\n".join(m.content for m in item.messages or ())
        for item in load_evalset([path])
    ]


def quantize(
    baseline: str,
    baseline_fingerprint: str,
    spec: QuantizeRecipe,
    cache_root: Path | None = None,
) -> Quantized:
    """The cached candidate for (baseline, spec, calibration), made when missing by the
    spec's quantizer: a checkpoint dir (llm-compressor) or a GGUF file (llama.cpp)."""
    cache_root = cache_root or home.quantized()
    quantizer = quantizer_of(spec)
    calib_sha = _input_sha(spec.calibration, "calibration set")
    inputs = {k: _input_sha(v, k) for k, v in quantizer.inputs(spec).items()}
    # A recipe file alone keys as it always has; other inputs by name and content.
    recipe_sha = inputs.get("recipe") if set(inputs) <= {"recipe"} else json.dumps(inputs)
    out = cache_root / cache_key(baseline_fingerprint, spec, calib_sha, recipe_sha)
    result = quantizer.result(out)
    # One process makes a cache entry; another asking for it meanwhile waits, then reads it.
    with hold(
        _lock(out), wait=True, what=f"which is quantizing the same ({spec.describe()})", remove=True
    ):
        if _verified(out):
            return Quantized(result, True, calib_sha, 0.0)
        return _make(
            baseline, baseline_fingerprint, spec, out, result, calib_sha, recipe_sha, cache_root
        )


def _make(
    baseline: str,
    baseline_fingerprint: str,
    spec: QuantizeRecipe,
    out: Path,
    result: Path,
    calib_sha: str | None,
    recipe_sha: str | None,
    cache_root: Path,
) -> Quantized:
    quantizer = quantizer_of(spec)
    # Before the timer: checks, and inputs cached on their own (llama.cpp's conversion).
    prepared = quantizer.prepare(baseline, baseline_fingerprint, spec, cache_root)
    started = time.monotonic()
    with entry.building(out, point="quantize") as tmp:
        try:
            versions = quantizer.make(baseline, spec, prepared, tmp, calibration_texts)
        except Exception as exc:  # whatever the engine raised: one line, and no half result
            if isinstance(exc, OSError) and exc.errno in FULL:
                raise DiskFull(
                    f"{exc.filename or tmp}: cannot be written: {exc.strerror} "
                    "(the cache is as it was)"
                ) from exc
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QuantizeError(f"quantizing {baseline} ({spec.describe()}): {first}") from exc
        seconds = time.monotonic() - started
        marker = {
            "spec": to_json(spec),
            "baseline": baseline,
            "baseline_fingerprint": baseline_fingerprint,
            "calibration_sha256": calib_sha,
            "recipe_sha256": recipe_sha,
            "seconds": round(seconds, 1),
            **versions,
        }
        entry.write_seal(tmp, MARKER, marker)
    return Quantized(result, False, calib_sha, seconds)


def _lock(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def _verified(out: Path) -> bool:
    """Whether `out` is a complete entry whose files are those recorded when it was made; a
    damaged one (a file changed, added or missing; no hashes recorded) says so and is made
    again."""
    if not out.exists():
        return False
    record, why = entry.check(out, MARKER, sealed_only=False)
    if record is not None:
        return True
    logger.warning("%s: damaged cache entry (%s); making it again", out, why)
    return False


def unquantized_gguf(
    baseline: str, baseline_fingerprint: str, outtype: str, cache_root: Path
) -> Path:
    """The baseline as one unquantized GGUF: the file itself when it is one, else converted
    once per (baseline fingerprint, outtype) and cached."""
    if baseline.endswith(".gguf") and Path(baseline).is_file():
        return Path(baseline)
    blob = json.dumps([RECIPE_VERSION, baseline_fingerprint, "convert", outtype])
    out = cache_root / f"gguf-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"
    with hold(_lock(out), wait=True, what=f"which is converting {baseline} to GGUF", remove=True):
        if not _verified(out):
            _convert(baseline, baseline_fingerprint, outtype, out)
    return out / "model.gguf"


def _convert(baseline: str, baseline_fingerprint: str, outtype: str, out: Path) -> None:
    from harness.run.quantize.llamacpp import convert

    logger.info("converting %s to a %s GGUF (once)", baseline, outtype.upper())
    with entry.building(out, point="quantize") as tmp:
        try:
            convert(baseline, outtype, tmp / "model.gguf", tmp / "llama.cpp.log")
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QuantizeError(f"converting {baseline} to GGUF: {first}") from exc
        marker = {
            "baseline": baseline,
            "baseline_fingerprint": baseline_fingerprint,
            "outtype": outtype,
            "llama_cpp": VERSION,
        }
        entry.write_seal(tmp, MARKER, marker)


def linear_inputs(checkpoint: str) -> dict[str, int]:
    """Input width of every 2-D weight but the embeddings, by module name, read from the
    safetensors headers alone (no tensor is loaded)."""
    widths: dict[str, int] = {}
    for file in sorted(Path(checkpoint).glob("*.safetensors")):
        with open(file, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        for name, meta in header.items():
            shape = meta.get("shape", []) if isinstance(meta, dict) else []
            if name.endswith(".weight") and len(shape) == 2 and "embed" not in name:
                widths[name.removesuffix(".weight")] = int(shape[1])
    return widths


def _ignored(module: str, ignore: tuple[str, ...]) -> bool:
    return any(
        re.search(p[3:], module)
        if p.startswith("re:")
        else module.split(".")[-1] == p or module == p
        for p in ignore
    )


def check_groups(baseline: str, spec: QuantizeSpec) -> None:
    """Before quantizing: every quantized layer's input width must split into whole groups.
    One line names the layers that do not, and the group sizes that would."""
    group = spec.group_size or preset_group_size(spec.scheme)
    if group is None:
        return
    widths = {m: w for m, w in linear_inputs(baseline).items() if not _ignored(m, spec.ignore)}
    bad = sorted((m for m, w in widths.items() if w % group), key=lambda m: (widths[m], m))
    if not bad:
        return
    common = math.gcd(*widths.values())
    fits = [g for g in (256, 128, 64, 32, 16, 8) if common % g == 0]
    shown = ", ".join(f"{m} ({widths[m]})" for m in bad[:3]) + (" ..." if len(bad) > 3 else "")
    raise QuantizeError(
        f"quantizing {baseline} ({spec.describe()}): {len(bad)} of {len(widths)} layers have an "
        f"input width that groups of {group} do not divide: {shown}; group sizes that divide "
        f"every layer: {', '.join(map(str, fits)) or 'none'} (set group_size, or ignore them)"
    )


def preset_group_size(scheme: str) -> int | None:
    """The group size a compressed-tensors preset quantizes weights in (None: not grouped)."""
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES

    if scheme not in PRESET_SCHEMES:
        raise QuantizeError(f"compressed-tensors knows no scheme {scheme!r}")
    weights = PRESET_SCHEMES[scheme].get("weights")
    strategy = str(getattr(weights, "strategy", ""))
    return int(weights.group_size) if weights is not None and "group" in strategy else None


def package_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
