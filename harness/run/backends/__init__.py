"""The engine table: `backend = "<key>"` in a model's config table names one of `ENGINES`,
or, for an engine that lives outside this package, its import path `"package.module:Class"`
(a `Backend` subclass): one file, no change here.

Entries are import paths, imported on first use: an engine's dependencies (torch and
transformers for `hf`) load only when a model of that engine is opened.
"""

from __future__ import annotations

import importlib
import re

from harness.records import ModelSpec
from harness.records.errors import HarnessError
from harness.run.backends.base import Backend, Capabilities, Generated, ModelLoadError

ENGINES: dict[str, str] = {
    "hf": "harness.run.backends.hf:HFBackend",  # transformers, in process (the default)
    "llama.cpp": "harness.run.backends.llamacpp:LlamaCppBackend",  # a GGUF file, in process
    "openai": "harness.run.backends.openai:OpenAIBackend",  # any OpenAI-compatible server
}

__all__ = [
    "ENGINES",
    "Backend",
    "Capabilities",
    "Generated",
    "ModelLoadError",
    "known",
    "open_backend",
]


class UnknownBackend(HarnessError):
    """A model names an engine that is not in the table."""


IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def known(name: str) -> bool:
    """A key of the table, or something shaped like an import path (checked when opened)."""
    return name in ENGINES or bool(IMPORT_PATH.match(name))


def engine_class(name: str) -> type[Backend]:
    if not known(name):
        raise UnknownBackend(
            f"unknown backend {name!r} (known: {', '.join(ENGINES)}, or 'package.module:Class')"
        )
    module, _, attr = ENGINES.get(name, name).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownBackend(f"backend {name!r} cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackend(f"backend {name!r} is not a harness.run.backends.Backend subclass")
    return cls


def open_backend(spec: ModelSpec) -> Backend:
    """Load `spec` with its engine; the caller closes it (or uses `with`). An engine's own
    failure to read the files becomes one line naming the model and its path."""
    kind = engine_class(spec.backend)
    try:
        return kind(spec)
    except HarnessError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(
            f"model {spec.name!r} ({spec.path}): {spec.backend} cannot load "
            f"it: {type(exc).__name__}: {first}"
        ) from exc
