"""Side-by-side quality evaluation of quantized LLMs against their full-precision baseline.

The library API (imported on first use, so `import harness.gate` never loads torch):
`harness.compare(config, out) -> Results`, `harness.rebuild(run_dir) -> Results`, and
`harness.load_config(path)`; every error that means "could not evaluate" is a
`harness.HarnessError`.
"""

from __future__ import annotations

import os
from typing import Any

from harness.errors import HarnessError

# Before torch loads MKL: results that do not depend on where buffers happen to lie. Without
# it MKL picks its summation order by memory alignment, and a run resumed after a kill (a
# process with another allocation history) gave per-token KLDs differing by ~1e-8 from the
# uninterrupted run in 2 of 20 tries (outputs identical); with it, 10 of 10 were identical.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
__all__ = ["HarnessError", "compare", "load_config", "rebuild"]


def __getattr__(name: str) -> Any:
    if name in ("compare", "rebuild"):
        from harness import pipeline

        return getattr(pipeline, name)
    if name == "load_config":
        from harness.config import load_config

        return load_config
    raise AttributeError(name)
