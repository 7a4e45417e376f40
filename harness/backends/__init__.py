"""The engine table: `backend = "<key>"` in a model's config table names one of `ENGINES`.

Entries are import paths, imported on first use: an engine's dependencies (torch and
transformers for `hf`) load only when a model of that engine is opened.
"""

from __future__ import annotations

import importlib

from harness.backends.base import Backend, Capabilities, Generated, ModelLoadError
from harness.errors import HarnessError
from harness.records import ModelSpec

ENGINES: dict[str, str] = {
    "hf": "harness.backends.hf:HFBackend",  # transformers, in process (the default)
}

__all__ = ["ENGINES", "Backend", "Capabilities", "Generated", "ModelLoadError", "open_backend"]


class UnknownBackend(HarnessError):
    """A model names an engine that is not in the table."""


def engine_class(name: str) -> type[Backend]:
    if name not in ENGINES:
        raise UnknownBackend(f"unknown backend {name!r} (known: {', '.join(ENGINES)})")
    module, _, attr = ENGINES[name].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), attr)
    return cls


def open_backend(spec: ModelSpec) -> Backend:
    """Load `spec` with its engine; the caller closes it (or uses `with`)."""
    return engine_class(spec.backend)(spec)
