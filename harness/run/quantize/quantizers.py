"""The quantizer table: `quantize = { engine = "<name>", ... }` in a candidate's table names one
of `QUANTIZERS` (built-ins, then those installed packages declare under the
`harness.quantizers` entry point). A quantizer is one object satisfying `Quantizer`; its
settings record declares the keys of its `quantize` table.

Entries are import paths, imported on first use; a quantizer imports its own library
(llm-compressor, llama.cpp's tools) only when it makes something.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.records import ModelSpec
from harness.records.registry import Registry

DEFAULT = "llm-compressor"  # a `quantize` table without `engine`


@runtime_checkable
class QuantizeRecipe(Protocol):
    """What every quantizer's settings record offers the cache and the report."""

    @property
    def calibration(self) -> str | None: ...  # a calibration file, hashed into the cache key

    def recipe_dict(self) -> dict[str, Any]: ...  # what defines the result, files aside

    def describe(self) -> str: ...  # the recipe in words ("Made by")


class Quantizer(Protocol):
    """One way of making a candidate from the baseline."""

    name: str  # the `engine` key of a `quantize` table
    spec: type  # its settings record, fields declared with `harness.records.schema.setting`

    def inputs(self, spec: Any) -> dict[str, str]:
        """Files besides the calibration set whose content defines the result (a recipe
        YAML): what name -> path; hashed into the cache key."""
        ...

    def result(self, entry: Path) -> Path:
        """Where the made model lies inside its cache entry (a folder, or a file in it)."""
        ...

    def check(self, baseline: ModelSpec, spec: Any) -> None:
        """What the recipe needs (tools, layer shapes), before any candidate is made: a
        `HarnessError` saying what is missing."""
        ...

    def prepare(self, baseline: str, fingerprint: str, spec: Any, cache_root: Path) -> Any:
        """Checks and cached inputs, before the timer starts (llama.cpp's unquantized GGUF);
        passed to `make`."""
        ...

    def make(
        self,
        baseline: str,
        spec: Any,
        prepared: Any,
        out: Path,
        texts: Callable[[str], list[str]],
    ) -> dict[str, str | None]:
        """The candidate written into `out` (an empty folder); the versions of the tools
        that made it."""
        ...

    def candidate(self, name: str, path: Path, baseline: ModelSpec) -> ModelSpec:
        """How the made model runs: its engine and settings, given the baseline's."""
        ...

    def context(self, baseline: ModelSpec, base_context: int | None) -> int | None:
        """The made model's context, known before it is made (the baseline's `context`
        setting and the context its engine reported)."""
        ...


QUANTIZERS: Registry[Quantizer] = Registry(
    "quantize engine",
    "harness.quantizers",
    {
        "llm-compressor": "harness.run.quantize.llmcompressor:QUANTIZER",
        "llama.cpp": "harness.run.quantize.llamacpp:QUANTIZER",
    },
    accept=lambda q: isinstance(getattr(q, "spec", None), type) and hasattr(q, "make"),
    is_a="a harness.run.quantize.quantizers.Quantizer",
)


def quantizer_of(spec: Any) -> Quantizer:
    """The quantizer whose settings record `spec` is."""
    for name in QUANTIZERS:
        quantizer = QUANTIZERS.get(name)
        if isinstance(spec, quantizer.spec):
            return quantizer
    raise TypeError(f"no quantizer takes a {type(spec).__name__}")
