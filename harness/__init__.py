"""Side-by-side quality evaluation of quantized LLMs against their full-precision baseline.

The library API (imported on first use, so `import harness.analysis.gate` never loads torch):
`harness.compare(config, out) -> Results`, `harness.rebuild(run_dir) -> Results`, and
`harness.load_config(path)`; every error that means "could not evaluate" is a
`harness.HarnessError`.
"""

from __future__ import annotations

from typing import Any

from harness.records.errors import HarnessError

__version__ = "0.1.0"
__all__ = ["HarnessError", "compare", "load_config", "rebuild"]


def __getattr__(name: str) -> Any:
    if name in ("compare", "rebuild"):
        from harness import api

        return getattr(api, name)
    if name == "load_config":
        from harness.inputs.config import load_config

        return load_config
    raise AttributeError(name)
