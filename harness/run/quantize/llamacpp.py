"""GGUF candidates with llama.cpp's own tools (the build `make llama-cpp` makes).

baseline checkpoint dir --convert_hf_to_gguf.py--> unquantized GGUF (F32 by default)
  [--llama-imatrix on the calibration texts--> importance matrix]
  --llama-quantize TYPE--> the candidate GGUF.

The unquantized GGUF is itself cached (by baseline fingerprint and outtype): a ladder of types
converts once. A baseline that is already a GGUF file is quantized as it is.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.records import GgufSpec, ModelSpec
from harness.records.errors import HarnessError
from harness.run.llamacpp_home import source_dir, tool

logger = logging.getLogger(__name__)


class ToolFailed(HarnessError):
    """A llama.cpp tool exited non-zero; the message carries its last line of output."""


def _run(cmd: list[str], what: str, log: Path) -> None:
    """Run a tool with its output in `log` (kept next to the result for a post-mortem)."""
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise ToolFailed(f"{what} exited with {code}: {last} (full output: {log})")
    logger.info("  %s: %.0fs", what, time.monotonic() - started)


def convert(baseline: str, outtype: str, out: Path, log: Path) -> None:
    """A transformers checkpoint dir to one GGUF file, with llama.cpp's own converter (the
    vendored gguf-py it puts first on its path, not the `gguf` package of our environment)."""
    script = source_dir() / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise ToolFailed(f"{script} not found: run `make llama-cpp`")
    # Through our wrapper, which adds character vocabularies (see gguf_convert).
    cmd = [
        sys.executable,
        "-m",
        "harness.run.quantize.gguf_convert",
        str(source_dir()),
        "--",
        baseline,
        "--outfile",
        str(out),
        "--outtype",
        outtype,
    ]
    _run(cmd, f"convert_hf_to_gguf ({outtype})", log)


def imatrix(model: Path, texts: list[str], spec: GgufSpec, out: Path, log: Path) -> None:
    """llama-imatrix over the calibration texts, one blank line between them."""
    corpus = out.with_suffix(".txt")
    corpus.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    threads = str(os.cpu_count() or 1)
    cmd = [
        str(tool("llama-imatrix")),
        "-m",
        str(model),
        "-f",
        str(corpus),
        "-o",
        str(out),
        "-c",
        str(spec.imatrix_context),
        "--chunks",
        str(spec.imatrix_chunks),
        "-t",
        threads,
        "--no-ppl",
    ]
    _run(cmd, "llama-imatrix", log)


def make_gguf(
    source: Path, spec: GgufSpec, out_dir: Path, texts: Callable[[str], list[str]] | None
) -> Path:
    """`source` (an unquantized GGUF) quantized to `spec.type` as out_dir/model.gguf."""
    log = out_dir / "llama.cpp.log"
    target = out_dir / "model.gguf"
    if spec.type.lower() == spec.outtype and spec.imatrix is None:
        # The unquantized GGUF itself (the engine noise floor): a hard link, not a copy.
        if source.stat().st_dev == out_dir.stat().st_dev:
            os.link(source, target)
        else:
            shutil.copyfile(source, target)
        return target
    cmd = [str(tool("llama-quantize"))]
    if spec.imatrix is not None:
        if texts is None:
            raise ToolFailed("an imatrix needs the calibration texts")
        matrix = out_dir / "imatrix.gguf"
        imatrix(source, texts(spec.imatrix), spec, matrix, log)
        cmd += ["--imatrix", str(matrix)]
    cmd += [str(source), str(target), spec.type, str(os.cpu_count() or 1)]
    _run(cmd, f"llama-quantize {spec.type}", log)
    return target


class LlamaCppQuantizer:
    """A GGUF file, run by llama.cpp in process with the baseline's threads and context."""

    name = "llama.cpp"
    spec = GgufSpec

    def inputs(self, spec: GgufSpec) -> dict[str, str]:
        return {}

    def result(self, entry: Path) -> Path:
        return entry / "model.gguf"

    def check(self, baseline: ModelSpec, spec: GgufSpec) -> None:
        tool("llama-quantize")
        if spec.imatrix is not None:
            tool("llama-imatrix")

    def prepare(self, baseline: str, fingerprint: str, spec: GgufSpec, cache: Path) -> Path:
        """The unquantized GGUF, converted once and cached on its own."""
        from harness.run.quantize import unquantized_gguf

        return unquantized_gguf(baseline, fingerprint, spec.outtype, cache)

    def make(
        self,
        baseline: str,
        spec: GgufSpec,
        prepared: Path,
        out: Path,
        texts: Callable[[str], list[str]],
    ) -> dict[str, str | None]:
        from harness.run.llamacpp_home import VERSION

        make_gguf(prepared, spec, out, texts)
        return {"llama_cpp": VERSION}

    def candidate(self, name: str, path: Path, baseline: ModelSpec) -> ModelSpec:
        return ModelSpec(
            name=name,
            path=str(path),
            backend="llama.cpp",
            threads=baseline.threads,
            context=baseline.context,
        )

    def context(self, baseline: ModelSpec, base_context: int | None) -> int | None:
        return baseline.context or base_context


QUANTIZER = LlamaCppQuantizer()
