"""llm-compressor: the only module that imports it (on first use)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.records import QuantizeSpec


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
