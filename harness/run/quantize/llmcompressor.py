"""llm-compressor: the only module that imports it (on first use)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.records import ModelSpec, QuantizeSpec


def _modifier(spec: QuantizeSpec) -> Any:
    """The recipe: the YAML file when given, else the preset scheme (its group size
    overridden when asked) applied by RTN or GPTQ to every Linear but `ignore`
    (lm_head by default, as in llm-compressor's own examples and vLLM's kernels)."""
    if spec.recipe is not None:
        return spec.recipe
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    scheme = preset_name_to_scheme(spec.scheme, ["Linear"])
    if spec.group_size is not None and scheme.weights is not None:
        update = {"group_size": spec.group_size, "strategy": "group"}
        scheme.weights = scheme.weights.model_copy(update=update)
    groups = {"group_0": scheme}
    kind = GPTQModifier if spec.method == "gptq" else QuantizationModifier
    return kind(config_groups=groups, ignore=list(spec.ignore))


# How often a quantization running for minutes says it is alive, and how far it is.
HEARTBEAT_S = 30.0


def run_oneshot(
    baseline: str, spec: QuantizeSpec, out: Path, texts: Callable[[str], list[str]], seed: int
) -> None:
    """Quantize the checkpoint at `baseline` into `out` (`texts` reads a calibration set)."""
    # llm-compressor logs every layer at INFO; its own variable still wins when set.
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")
    from llmcompressor import oneshot

    kwargs: dict[str, Any] = {}
    if spec.calibration is not None:
        from datasets import Dataset

        calibration = texts(spec.calibration)
        kwargs = {
            "dataset": Dataset.from_dict({"text": calibration}),
            "num_calibration_samples": min(spec.samples, len(calibration)),
            "max_seq_length": spec.max_seq_length,
            # llm-compressor shuffles with torch's global generator by default, so two runs
            # would calibrate on different samples; a length-aware, unshuffled pick (and a
            # fixed seed for anything else) makes the same inputs give the same checkpoint.
            "shuffle_calibration_samples": False,
        }
    import torch

    torch.manual_seed(seed)
    # Paths, not objects: oneshot loads the model and tokenizer itself.
    oneshot(
        model=baseline, processor=baseline, recipe=_modifier(spec), output_dir=str(out), **kwargs
    )


def _group(scheme: str, targets: list[str], group_size: int | None) -> dict[str, Any]:
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme

    data: dict[str, Any] = preset_name_to_scheme(scheme, targets).model_dump(exclude_none=True)
    if group_size is not None and "weights" in data:
        data["weights"] |= {"group_size": group_size, "strategy": "group"}
    return data


def mixed_recipe(spec: QuantizeSpec, keep: list[int], keep_scheme: str, layers: int) -> str:
    """An llm-compressor recipe (JSON, which YAML reads): decoder layers `keep` get
    `keep_scheme`, every other layer the rung's scheme; Linear projections only (`*_proj`,
    Llama-family names), `ignore` as the rung's. Same group size for both."""
    import json

    def targets(numbers: list[int]) -> list[str]:
        return [f"re:^model\\.layers\\.({'|'.join(map(str, numbers))})\\..*_proj$"]

    rest = [i for i in range(layers) if i not in keep]
    groups = {}
    if rest:
        groups["group_0"] = _group(spec.scheme, targets(rest), spec.group_size)
    if keep:
        groups["group_1"] = _group(keep_scheme, targets(keep), spec.group_size)
    kind = "GPTQModifier" if spec.method == "gptq" else "QuantizationModifier"
    recipe = {
        "quant_stage": {
            "quant_modifiers": {kind: {"ignore": list(spec.ignore), "config_groups": groups}}
        }
    }
    return json.dumps(recipe, indent=2) + "\n"


class LlmCompressor:
    """A compressed-tensors checkpoint (the format vLLM serves), run by the baseline's own
    engine on its device."""

    name = "llm-compressor"
    spec = QuantizeSpec

    def inputs(self, spec: QuantizeSpec) -> dict[str, str]:
        return {} if spec.recipe is None else {"recipe": spec.recipe}

    def result(self, entry: Path) -> Path:
        return entry

    def check(self, baseline: ModelSpec, spec: QuantizeSpec) -> None:
        from harness.run.quantize import check_groups

        if spec.recipe is None and Path(baseline.path).is_dir():
            check_groups(baseline.path, spec)

    def prepare(self, baseline: str, fingerprint: str, spec: QuantizeSpec, cache: Path) -> None:
        from harness.run.quantize import check_groups

        if spec.recipe is None:
            check_groups(baseline, spec)

    def make(
        self,
        baseline: str,
        spec: QuantizeSpec,
        prepared: None,
        out: Path,
        texts: Callable[[str], list[str]],
    ) -> dict[str, str | None]:
        from harness.run.quantize import SEED, package_version
        from harness.shell import console, worker

        with (
            worker.running(baseline, "llm-compressor", f"quantizing ({spec.describe()})"),
            console.into_log("llm-compressor") as terminal,
            console.heartbeat(f"quantizing {spec.describe()}", HEARTBEAT_S, terminal),
        ):
            run_oneshot(baseline, spec, out, texts, SEED)
        return {
            "llmcompressor": package_version("llmcompressor"),
            "compressed_tensors": package_version("compressed-tensors"),
        }

    def candidate(self, name: str, path: Path, baseline: ModelSpec) -> ModelSpec:
        # Its dtype is the checkpoint's; the baseline's engine and device run it.
        return ModelSpec(
            name=name,
            path=str(path),
            dtype=baseline.dtype,
            device=baseline.device,
            backend=baseline.backend,
        )

    def context(self, baseline: ModelSpec, base_context: int | None) -> int | None:
        return base_context  # its config is the baseline's


QUANTIZER = LlmCompressor()
