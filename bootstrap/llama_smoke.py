"""The smoke test of a llama.cpp build, on the machine that runs it.

A build that compiles is not one that runs: ggml picks its CPU variant by CPUID alone, and a
VM may advertise an instruction set whose state its kernel never enabled (AMX, AVX-512), so
the first matmul of that kind dies with SIGILL. This runs every kernel family the harness
uses (F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K and IQ4_NL) on the demo model converted to GGUF,
each in its own child process (the `llama_cpp` bindings on this build's library, decoding a
short text: the path the harness's engine runs), and checks that it exits 0 with a finite
perplexity. Each quantized file is read back to check that the type
really holds weights (llama-quantize falls back to another type for rows that a K-quant's
256-wide block does not divide; the demo's 512-wide FFN rows do take every type).

When the variant that ggml picked crashes, that variant is set aside (renamed
`.so.disabled`, so ggml's loader no longer sees it) and the test runs again on the next one
down; a build whose floor variant (x86-64) still fails is refused, with one line naming the
type and the signal. `bootstrap.llama_cpp` runs this after a build and again whenever the
machine's CPU features differ from those recorded (home folders travel with images, VMs
migrate).
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "model"
TEXT = REPO / "evalsets" / "demo"
# (llama-quantize type, the ggml type that must then hold weights); F32 is the conversion.
KERNELS = (
    ("F32", "F32"),
    ("F16", "F16"),
    ("Q8_0", "Q8_0"),
    ("Q4_0", "Q4_0"),
    ("Q4_K_S", "Q4_K"),
    ("Q5_K_S", "Q5_K"),
    ("Q6_K", "Q6_K"),
    ("IQ4_NL", "IQ4_NL"),
)
# The instruction sets each variant that bootstrap.llama_cpp builds is compiled with, as
# llama.cpp's system_info names them (ggml/src/CMakeLists.txt, ggml_add_cpu_backend_variant).
_AVX2 = frozenset({"AVX", "AVX2", "F16C", "FMA", "BMI2"})
VARIANT_FEATURES = {
    "x64": frozenset(),
    "haswell": _AVX2,
    "skylakex": _AVX2 | {"AVX512"},
    "icelake": _AVX2 | {"AVX512", "AVX512_VBMI", "AVX512_VNNI"},
}
# A tiny model on a short text takes well under a second; a hung kernel is a failure too.
TIMEOUT_S = 120


class SmokeFailed(SystemExit):
    """The build does not run here; the message is one line."""


@dataclass(frozen=True)
class Outcome:
    kernel: str
    returncode: int
    variant: str | None
    ppl: float | None
    tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.ppl is not None and math.isfinite(self.ppl)

    def why(self) -> str:
        if self.returncode < 0:
            return f"killed by {signal.Signals(-self.returncode).name}"
        if self.returncode == 124:
            return f"no answer within {TIMEOUT_S} s"
        if self.returncode != 0:
            return f"exit {self.returncode}: {self.tail}"
        return f"perplexity {self.ppl} is not a finite number"


def say(text: str) -> None:
    print(f"llama-cpp: {text}", file=sys.stderr, flush=True)


def cpu_flags() -> list[str]:
    """The flags line of /proc/cpuinfo (what the kernel reports and has enabled)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def variant_of(system_info: str) -> str | None:
    """Which built variant a process loaded, from the CPU features its system_info lists."""
    m = re.search(r"CPU : ([^\n]*)", system_info)
    if not m:
        return None
    have = {
        k.strip()
        for k, _, v in (p.partition("=") for p in m.group(1).split("|"))
        if v.strip() == "1"
    }
    fits = [name for name, feats in VARIANT_FEATURES.items() if feats <= have]
    return max(fits, key=lambda n: len(VARIANT_FEATURES[n])) if fits else None


def _text(folder: Path) -> Path:
    """A few hundred characters the demo's vocabulary covers (its own prompts)."""
    path = folder / "text.txt"
    lines = []
    for file in sorted(TEXT.glob("*.jsonl")):
        lines += file.read_text(encoding="utf-8").splitlines()[:4]
    path.write_text(" ".join(json.loads(x)["prompt"] for x in lines) + "\n", encoding="utf-8")
    return path


def _tensor_types(path: Path) -> set[str]:
    from gguf import GGUFReader

    return {t.tensor_type.name for t in GGUFReader(path).tensors}


def models(home: Path, folder: Path) -> dict[str, Path]:
    """The demo model in every kernel family's type (made once, kept in `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "make.log"
    made: dict[str, Path] = {}
    f32 = folder / "F32.gguf"
    if not f32.is_file():
        cmd = [
            sys.executable,
            "-m",
            "harness.run.quantize.gguf_convert",
            str(home / "src"),
            "--",
            str(DEMO),
            "--outfile",
            str(f32),
            "--outtype",
            "f32",
        ]
        _quiet(cmd, log, "converting the demo model to GGUF")
    for qtype, ggml_type in KERNELS:
        path = folder / f"{qtype}.gguf"
        if qtype != "F32" and not path.is_file():
            cmd = [str(home / "bin" / "llama-quantize"), "--pure", str(f32), str(path), qtype]
            _quiet(cmd, log, f"quantizing the demo model to {qtype}")
        if ggml_type not in _tensor_types(path):
            raise SmokeFailed(f"llama-cpp: smoke test: {path.name} holds no {ggml_type} weights")
        made[ggml_type] = path
    return made


def _quiet(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO).returncode
    if code != 0:
        raise SmokeFailed(f"llama-cpp: smoke test: {what} failed with exit {code} (see {log})")


def run_one(home: Path, kernel: str, model: Path, text: Path) -> Outcome:
    """One kernel family in a child process (`--one`): the engine path the harness runs,
    through the bindings on this build's library. Not llama-perplexity: its log is written by
    a thread that is not flushed at exit (llama.cpp issue 22142), and on a busy machine its
    last lines, the perplexity among them, were lost."""
    cmd = [
        sys.executable,
        "-m",
        "bootstrap.llama_smoke",
        "--one",
        str(home),
        str(model),
        str(text),
        kernel,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=REPO)
        code, output, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        code, output, err = 124, str(e.stdout or ""), str(e.stderr or "")
    variant = variant_of(output)
    m = re.search(r"^nll (\S+)$", output, re.M)
    ppl = math.exp(float(m.group(1))) if m and math.isfinite(float(m.group(1))) else None
    lines = [x for x in err.splitlines() if x.strip()]
    return Outcome(kernel, code, variant, ppl, lines[-1].strip() if lines else "")


def one(home: Path, model: Path, text: Path, kernel: str) -> None:
    """In the child: say which CPU variant loaded (before anything can crash), then decode
    the text and print its mean NLL."""
    import os

    import numpy as np

    os.environ["LLAMA_CPP_LIB_PATH"] = str(home / "bin")
    import llama_cpp

    from harness.store import faults

    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=64, n_batch=64, n_threads=2, logits_all=True, verbose=False
    )
    print(llama_cpp.llama_print_system_info().decode(), flush=True)
    tokens = llm.tokenize(text.read_text(encoding="utf-8").encode(), add_bos=True)[:64]
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
    faults.point(f"smoke:{kernel}")
    top = logits.max(axis=1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    nll = -float(np.mean(logp[np.arange(len(tokens) - 1), tokens[1:]]))
    print(f"nll {nll}", flush=True)
    llm.close()


def disable(home: Path, variant: str) -> None:
    lib = home / "bin" / f"libggml-cpu-{variant}.so"
    lib.rename(lib.with_name(lib.name + ".disabled"))


def enable_all(home: Path) -> None:
    """A new machine may run what the last one could not: every variant is tried again."""
    for lib in (home / "bin").glob("libggml-cpu-*.so.disabled"):
        lib.rename(lib.with_name(lib.name.removesuffix(".disabled")))


def smoke(home: Path) -> dict[str, object]:
    """Check the build in `home` on this machine; returns what the build marker records."""
    started = time.monotonic()
    enable_all(home)
    folder = home / "smoke"
    made = models(home, folder)
    text = _text(folder)
    disabled: list[dict[str, str]] = []
    while True:
        outcomes = [run_one(home, k, path, text) for k, path in made.items()]
        failed = [o for o in outcomes if not o.ok]
        variant = next((o.variant for o in outcomes if o.variant), None)
        if not failed:
            break
        first = failed[0]
        line = f"{first.kernel} {first.why()} on CPU variant {variant or 'unknown'}"
        again = any(d["variant"] == variant for d in disabled)  # loaded from elsewhere
        if variant is None or variant == "x64" or again:
            raise SmokeFailed(f"llama-cpp: smoke test failed: {line}; this build cannot run here")
        say(f"smoke test: {line}; setting that variant aside and trying the next one down")
        disabled.append({"variant": variant, "why": line})
        disable(home, variant)
    seconds = time.monotonic() - started
    say(f"smoke test passed in {seconds:.0f} s: {', '.join(made)} on CPU variant {variant}")
    return {
        "variant": variant,
        "kernels": list(made),
        "disabled": disabled,
        "cpu_flags": cpu_flags(),
    }


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        home, model, text, kernel = sys.argv[2:6]
        one(Path(home), Path(model), Path(text), kernel)
        return
    from harness.run import llamacpp_home as lc

    smoke(lc.home())


if __name__ == "__main__":
    main()
