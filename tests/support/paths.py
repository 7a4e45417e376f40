"""Where the real models and the llama.cpp build are, and the marks that skip a test (saying
why) when `make real-model` or `make llama-cpp` has not run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records.home import quantized
from harness.run.llamacpp_home import bin_dir

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "harness" / "demo" / "model"
SMOLLM = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
MINILM = REPO / ".cache" / "harness" / "models" / "all-MiniLM-L6-v2"
REAL = REPO / "evalsets" / "real"
# the quantized checkpoints every run on this machine shares (the harness home's)
QUANTIZED = quantized()

NEEDS_REAL_MODEL = pytest.mark.skipif(
    not (SMOLLM / "harness_fetch.json").is_file() or not MINILM.is_dir(),
    reason="the real model is not fetched (make real-model)",
)
NEEDS_LLAMA_CPP = pytest.mark.skipif(
    not (bin_dir() / "llama-server").is_file(), reason="llama.cpp is not built (make llama-cpp)"
)
