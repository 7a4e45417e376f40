"""`make llama-cpp`: llama.cpp from the package registry, built once.

The PyPI sdist of `llama-cpp-python` vendors the whole llama.cpp tree. We build its tools
(llama-server, llama-quantize, llama-imatrix, llama-perplexity) and the shared library
(`libllama.so`, `libggml*.so`) with cmake, once per machine, into the harness home
(`~/.cache/harness/llama.cpp/<version>/`; `HARNESS_HOME` or `XDG_CACHE_HOME` move it), where
every clone and every folder finds it, then install the `llama_cpp` Python bindings with
their own build switched off (`-DLLAMA_BUILD=OFF`): they load our library through
`LLAMA_CPP_LIB_PATH`, so llama.cpp is compiled once, and the in-process backend and the
tools run the very same kernels.

Every step is skipped when its result is there; a second call does nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bootstrap import llama_smoke
from harness.records import home as harness_home
from harness.run import llamacpp_home as lc

DOWNLOADS = harness_home.downloads()  # the sdist, once per machine
MARKER = "harness_build.json"
# Measured: 7.6 min on this 2-core machine from an empty cache (README); printed before the build.
EXPECTED = "about 8 minutes on 2 cores"


def say(text: str) -> None:
    print(f"llama-cpp: {text}", file=sys.stderr, flush=True)


def sdist() -> Path:
    name = f"llama_cpp_python-{lc.VERSION}.tar.gz"
    path = DOWNLOADS / name
    if path.is_file():
        return path
    say(f"downloading {lc.SDIST} sdist (77 MB, the llama.cpp tree is inside)")
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        lc.SDIST,
        "-d",
        str(DOWNLOADS),
    ]
    subprocess.run(cmd, check=True)
    return path


def unpack(archive: Path, home: Path) -> Path:
    """The vendored llama.cpp tree lands in home/src (the sdist's own files in home/python)."""
    src, python = home / "src", home / "python"
    if (src / "CMakeLists.txt").is_file() and (python / "pyproject.toml").is_file():
        return python
    say(f"unpacking {archive.name}")
    tmp = home / ".unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    top = tmp / f"llama_cpp_python-{lc.VERSION}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(python, ignore_errors=True)
    (top / "vendor" / "llama.cpp").rename(src)
    top.rename(python)
    shutil.rmtree(tmp)
    return python


# A portable build: no -march=native. ggml's CPU backend is built once per variant below and
# the variant is chosen when the library loads (GGML_BACKEND_DL), by the CPUID score in
# ggml-cpu/arch/x86/cpu-feats.cpp. That score does not ask the OS whether it enabled a feature
# (its own FIXME), so the AMX variant ("sapphirerapids") is not built: on a VM whose CPUID
# shows AMX while its kernel has not enabled the tile state, it dies with SIGILL on the first
# Q8_0 matmul. Every other variant is checked by bootstrap.llama_smoke on the machine that runs it.
# Four of llama.cpp's fourteen x86 variants: the floor (x86-64, runs anywhere), AVX2, AVX-512,
# and AVX-512 with VBMI + VNNI; a CPU between two of them runs the lower (each one adds
# about 50 s of build on 2 cores).
VARIANTS = ("x64", "haswell", "skylakex", "icelake")
CONFIGURE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=ON",
    "-DGGML_CPU_ALL_VARIANTS=ON",
)


def restrict_variants(src: Path) -> None:
    """ggml builds every x86 variant it knows when GGML_CPU_ALL_VARIANTS is on (its `ggml`
    target depends on them all), so its list is cut to VARIANTS in our unpacked tree."""
    path = src / "ggml" / "src" / "CMakeLists.txt"
    text = path.read_text()
    start = text.index(
        'if (GGML_SYSTEM_ARCH STREQUAL "x86")', text.index("if (GGML_CPU_ALL_VARIANTS)")
    )
    end = text.index("elseif(GGML_SYSTEM_ARCH STREQUAL", start)
    lines = []
    for line in text[start:end].splitlines(keepends=True):
        m = re.match(r"\s*ggml_add_cpu_backend_variant\((\w+)", line)
        lines.append(line if m is None or m.group(1) in VARIANTS else f"#{line}")
    block = "".join(lines)
    kept = re.findall(r"^\s*ggml_add_cpu_backend_variant\((\w+)", block, re.M)
    if sorted(kept) != sorted(VARIANTS):
        raise SystemExit(f"llama-cpp: {path} lists x86 variants {kept}, expected {list(VARIANTS)}")
    path.write_text(text[:start] + block + text[end:])


def read_marker(home: Path) -> dict[str, object] | None:
    try:
        marker = json.loads((home / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def built(home: Path) -> bool:
    """A build of this recipe (an older -march=native build is not one: it is rebuilt)."""
    marker = read_marker(home)
    if marker is None or marker.get("configure") != list(CONFIGURE_FLAGS):
        return False
    libs = ["libllama.so", "libggml.so", "libggml-base.so"]
    return all((home / "bin" / name).is_file() for name in (*lc.TOOLS, *libs)) and any(
        (home / "bin" / f"libggml-cpu-{v}.so").is_file() for v in VARIANTS
    )


def build(home: Path) -> float:
    """cmake configure + build of the four tools and the shared library; returns seconds."""
    start = time.monotonic()
    build_dir = home / "build"
    restrict_variants(home / "src")
    if build_dir.exists():
        # An earlier recipe's build (-march=native, one CPU library) is not reused: cmake would
        # keep its cached options and its libggml-cpu.so would stay beside the variants.
        shutil.rmtree(build_dir)
    jobs = str(max(1, min(os.cpu_count() or 2, 8)))
    say(f"building llama.cpp {lc.VERSION} with {jobs} jobs ({EXPECTED}); progress follows")
    # The variants are found in GGML_BACKEND_DIR by any process (the Python bindings
    # included, whose executable is not beside them), and beside the tools.
    backend_dir = f"-DGGML_BACKEND_DIR={(build_dir / 'bin').resolve()}"
    configure = [
        "cmake",
        "-S",
        str(home / "src"),
        "-B",
        str(build_dir),
        *CONFIGURE_FLAGS,
        backend_dir,
    ]
    # Quiet unless it fails: cmake's git probe complains that the sdist's tree is no checkout.
    done = subprocess.run(configure, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit("llama-cpp: cmake could not configure the build (its output is above)")
    targets = [*lc.TOOLS, "llama", *(f"ggml-cpu-{v}" for v in VARIANTS)]
    cmd = [
        "cmake",
        "--build",
        str(build_dir),
        "--config",
        "Release",
        "-j",
        jobs,
        "--target",
        *targets,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    last = ""
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-40:], line]
        # cmake prints "[ 42%] Building ..."; one line per new percentage is enough.
        m = re.match(r"\[\s*(\d+)%\]", line)
        if m and m.group(1) != last:
            last = m.group(1)
            say(f"{last:>3}% ({time.monotonic() - start:.0f} s)  {line[7:].strip()[:80]}")
    if proc.wait() != 0:
        sys.stderr.write("".join(tail))
        raise SystemExit("llama-cpp: the build failed (its last lines are above)")
    link = home / "bin"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("build") / "bin")
    return time.monotonic() - start


def installed(package: str, version: str | None = None) -> bool:
    try:
        have = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return version is None or have == version


def bindings(python: Path) -> None:
    """`llama_cpp` with its own compile switched off; it loads our libllama.so."""
    say("installing the llama_cpp Python bindings (no compile: they load the library above)")
    env = {**os.environ, "CMAKE_ARGS": "-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF"}
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", str(python)]
    subprocess.run(cmd, check=True, env=env)


def checked(home: Path) -> bool:
    """The build passed the smoke test on a CPU with exactly this machine's features."""
    marker = read_marker(home) or {}
    check = marker.get("smoke")
    return isinstance(check, dict) and check.get("cpu_flags") == llama_smoke.cpu_flags()


def main() -> None:
    home = lc.home()
    home.mkdir(parents=True, exist_ok=True)
    did = False
    if not built(home):
        unpack(sdist(), home)
        seconds = build(home)
        marker = {
            "version": lc.VERSION,
            "build_seconds": round(seconds, 1),
            "cpus": os.cpu_count(),
            "tools": list(lc.TOOLS),
            "configure": list(CONFIGURE_FLAGS),
            "variants": list(VARIANTS),
        }
        write_marker(home, marker)
        say(f"built in {seconds / 60:.1f} min into {home / 'bin'}")
        did = True
    if not installed("llama_cpp_python", lc.VERSION):
        bindings(unpack(sdist(), home))
        did = True
    if not installed("sentencepiece"):
        # convert_hf_to_gguf.py imports it even for a BPE tokenizer such as SmolLM2's.
        say("installing sentencepiece (convert_hf_to_gguf.py imports it)")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "sentencepiece"]
        subprocess.run(cmd, check=True)
        did = True
    if not checked(home):  # after sentencepiece: the demo's conversion imports it
        if not did:
            say("this machine's CPU features differ from those the build was checked on")
        write_marker(home, {**(read_marker(home) or {}), "smoke": llama_smoke.smoke(home)})
        did = True
    if not did:
        check = (read_marker(home) or {}).get("smoke")
        variant = check.get("variant") if isinstance(check, dict) else None
        say(
            f"nothing to do: llama.cpp {lc.VERSION} is built in {home / 'bin'} and runs "
            f"here on CPU variant {variant}"
        )


def write_marker(home: Path, marker: dict[str, object]) -> None:
    tmp = home / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, home / MARKER)


if __name__ == "__main__":
    main()
