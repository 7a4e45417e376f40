"""Where the llama.cpp build lives, and how to reach its tools and library.

`make llama-cpp` (bootstrap/llama_cpp.py) builds llama.cpp from the vendored tree of the
`llama-cpp-python` sdist, once per machine, into the harness home
(`~/.cache/harness/llama.cpp/<version>/`, `harness.records.home`), found from any folder; the
`llama_cpp` Python bindings are installed without a compile of their own and load that
build's `libllama.so` (`LLAMA_CPP_LIB_PATH`).
`HARNESS_LLAMA_CPP` points elsewhere (a build of your own: a folder holding `bin/` with the
tools and the shared libraries, and `src/` with `convert_hf_to_gguf.py`). No torch here: the
report side reads nothing of this.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.records import home as harness_home
from harness.records.errors import HarnessError

# The bindings and the tree they vendor are one release; pinned so that the ctypes signatures
# of `llama_cpp` match the library we build.
VERSION = "0.3.36"
SDIST = f"llama-cpp-python=={VERSION}"
TOOLS = ("llama-server", "llama-quantize", "llama-imatrix", "llama-perplexity")


class LlamaCppMissing(HarnessError):
    """The llama.cpp build (or one of its tools) is not there."""


def home() -> Path:
    """`HARNESS_LLAMA_CPP`, else the harness home's `llama.cpp/<version>/`: where `make
    llama-cpp` builds, once per machine, so that a fresh clone finds it without compiling."""
    given = os.environ.get("HARNESS_LLAMA_CPP")
    return Path(given).resolve() if given else harness_home.home() / "llama.cpp" / VERSION


def bin_dir() -> Path:
    return home() / "bin"


def source_dir() -> Path:
    """The llama.cpp tree (convert_hf_to_gguf.py and gguf-py live there)."""
    return home() / "src"


def tool(name: str) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        raise LlamaCppMissing(f"{path} not found: run `make llama-cpp` (builds llama.cpp once)")
    return path


def bindings_env() -> None:
    """Point the `llama_cpp` bindings at our build's library before they are imported."""
    lib = bin_dir()
    if not (lib / "libllama.so").is_file():
        raise LlamaCppMissing(f"{lib / 'libllama.so'} not found: run `make llama-cpp`")
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(lib))
