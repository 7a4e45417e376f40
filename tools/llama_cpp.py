"""`make llama-cpp`: llama.cpp from the package registry, built once.

The PyPI sdist of `llama-cpp-python` vendors the whole llama.cpp tree. We build its tools
(llama-server, llama-quantize, llama-imatrix, llama-perplexity) and the shared library
(`libllama.so`, `libggml*.so`) with cmake, once per machine, into the user's cache
(`~/.cache/harness/llama.cpp/<version>/`, `XDG_CACHE_HOME` respected), which the repository's
`.cache/harness/llama.cpp/<version>/` links to (a fresh clone links the same build), then
install the `llama_cpp` Python bindings with their own build switched off
(`-DLLAMA_BUILD=OFF`): they load our library through `LLAMA_CPP_LIB_PATH`, so llama.cpp is
compiled once, and the in-process backend and the tools run the very same kernels.

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

from harness import llamacpp_home as lc

DOWNLOADS = lc.machine_home().parent.parent / "downloads"  # the sdist, once per machine
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
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--no-binary", ":all:", lc.SDIST, "-d", str(DOWNLOADS)]  # fmt: skip
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


def built(home: Path) -> bool:
    marker = home / MARKER
    if not marker.is_file():
        return False
    libs = ["libllama.so", "libggml.so"]
    return all((home / "bin" / name).is_file() for name in (*lc.TOOLS, *libs))


def build(home: Path) -> float:
    """cmake configure + build of the four tools and the shared library; returns seconds."""
    start = time.monotonic()
    build_dir = home / "build"
    jobs = str(max(1, min(os.cpu_count() or 2, 8)))
    say(f"building llama.cpp {lc.VERSION} with {jobs} jobs ({EXPECTED}); progress follows")
    configure = ["cmake", "-S", str(home / "src"), "-B", str(build_dir),
                 "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                 "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_BUILD_TESTS=OFF",
                 "-DLLAMA_BUILD_EXAMPLES=OFF"]  # fmt: skip
    # Quiet unless it fails: cmake's git probe complains that the sdist's tree is no checkout.
    done = subprocess.run(configure, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit("llama-cpp: cmake could not configure the build (its output is above)")
    targets = [*lc.TOOLS, "llama"]
    cmd = ["cmake", "--build", str(build_dir), "--config", "Release", "-j", jobs,
           "--target", *targets]  # fmt: skip
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


def place() -> Path:
    """The folder to build in: HARNESS_LLAMA_CPP when set; else the repository's
    .cache/harness/llama.cpp/<version> when it already holds a build; else the machine's
    build (made there once), which the repository's path then links to."""
    if "HARNESS_LLAMA_CPP" in os.environ or built(lc.DEFAULT_HOME):
        return lc.home()
    shared = lc.machine_home()
    link = lc.DEFAULT_HOME
    if not link.is_symlink() or link.resolve() != shared.resolve():
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)  # a half build of our own (no marker): start again shared
        link.parent.mkdir(parents=True, exist_ok=True)
        shared.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared.resolve(), target_is_directory=True)
    return shared


def main() -> None:
    home = place()
    home.mkdir(parents=True, exist_ok=True)
    did = False
    if not built(home):
        unpack(sdist(), home)
        seconds = build(home)
        (home / MARKER).write_text(
            json.dumps({"version": lc.VERSION, "build_seconds": round(seconds, 1),
                        "cpus": os.cpu_count(), "tools": list(lc.TOOLS)}, indent=2) + "\n"
        )  # fmt: skip
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
    if not did:
        say(f"nothing to do: llama.cpp {lc.VERSION} is built in {home / 'bin'}")


if __name__ == "__main__":
    main()
