"""The engine table: `backend = "<key>"` in a model's config table names one of `ENGINES`
(a `harness.records.registry.Registry`: the built-in engines, then those installed packages
declare under the `harness.engines` entry point), or, for an engine that lives outside this
package, its import path `"package.module:Class"` (a `Backend` subclass): one file, no change
here.

Entries are import paths, imported on first use: an engine's dependencies (torch and
transformers for `hf`) load only when a model of that engine is opened.
"""

from __future__ import annotations

from harness.records import ModelSpec
from harness.records.errors import HarnessError
from harness.records.registry import Registry, UnknownExtension
from harness.run.backends.base import Backend, Capabilities, Generated, ModelLoadError

ENGINES: Registry[type[Backend]] = Registry(
    "backend",
    "harness.engines",
    {
        "hf": "harness.run.backends.hf:HFBackend",  # transformers, in process (the default)
        "llama.cpp": "harness.run.backends.llamacpp:LlamaCppBackend",  # a GGUF file, in process
        "openai": "harness.run.backends.openai:OpenAIBackend",  # any OpenAI-compatible server
        "replay": "harness.run.backends.replay:ReplayBackend",  # the answers a log recorded
    },
    accept=lambda cls: isinstance(cls, type) and issubclass(cls, Backend),
    is_a="a harness.run.backends.Backend subclass",
    import_paths=True,
)
UnknownBackend = UnknownExtension

__all__ = [
    "ENGINES",
    "Backend",
    "Capabilities",
    "Generated",
    "ModelLoadError",
    "UnknownBackend",
    "engine_class",
    "known",
    "open_backend",
]


def known(name: str) -> bool:
    """A built-in engine, an installed plug-in's, or an import path (checked when opened)."""
    return ENGINES.known(name)


def engine_class(name: str) -> type[Backend]:
    return ENGINES.get(name)


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
