"""`harness sensitivity`: the sensitivity of a ladder rung, layer by layer, and a mixed
recipe proposed from it.

For an llm-compressor rung (usually the first that fails), each decoder layer is quantized
alone with the rung's recipe (every other module ignored), and the model is teacher-forced
on the baseline's own outputs from the ladder's run cache: the mean per-token KLD to the
baseline is what quantizing that layer costs (the sum over layers is shown next to the whole
rung's own KLD: small perturbations roughly add up).

The proposal keeps the costliest layers in a higher-precision scheme (`keep_scheme`, W8A16
by default, at the rung's group size: full precision would make a 4-bit rung heavier than
an 8-bit one), costliest first, until the layers kept carry at least half of the summed
cost (or exactly `keep` layers). Half is a starting point, not a tuned value: the proposal
is a rung to add to the ladder, whose rerun runs only that rung and shows whether it passes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.commands.common import CACHE_HELP, RUNS_HELP
from harness.inputs.config import load_config
from harness.inputs.evalset import load_evalset
from harness.records import SCHEMES, CompareConfig, QuantizeSpec
from harness.records.errors import HarnessError
from harness.run.plan import baseline_plan, effective_generation
from harness.run.quantize import quantizer_of
from harness.shell import worker
from harness.shell.exits import EXIT_OK
from harness.store.destinations import owned_folder
from harness.store.runcache import RunCache

LAYER = re.compile(r"^(model\.layers\.(\d+))\.")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LayerCost:
    layer: str  # module prefix, e.g. "model.layers.3"
    mean_kld: float
    tokens: int


def layer_groups(baseline: str) -> list[str]:
    """Decoder layer prefixes of a safetensors checkpoint, in order."""
    from harness.inputs.sizes import tensor_names

    found = {m.group(1): int(m.group(2)) for n in tensor_names(baseline) if (m := LAYER.match(n))}
    if not found:
        raise HarnessError(f"{baseline}: no model.layers.N tensors: cannot split by layer")
    return sorted(found, key=found.__getitem__)


def only(spec: QuantizeSpec, layer: str) -> QuantizeSpec:
    """The rung's recipe applied to one layer: every module outside it is ignored."""
    return replace(spec, ignore=(*spec.ignore, f"re:^(?!{re.escape(layer)}\\.).*"))


def propose(costs: list[LayerCost], keep: int | None = None) -> list[str]:
    """Costliest layers first: `keep` of them, or as many as carry half the summed cost."""
    ranked = sorted(costs, key=lambda c: -c.mean_kld)
    if keep is not None:
        return [c.layer for c in ranked[:keep]]
    total, kept, carried = sum(c.mean_kld for c in costs), [], 0.0
    for c in ranked:
        if carried >= total / 2:
            break
        kept.append(c.layer)
        carried += c.mean_kld
    return kept


def _rung(cfg: CompareConfig, name: str) -> QuantizeSpec:
    cand = next((c for c in cfg.candidates if c.name == name), None)
    if cand is None:
        raise HarnessError(f"{cfg.path}: no rung named {name!r}")
    q = cand.quantize
    if not isinstance(q, QuantizeSpec) or q.recipe is not None:
        raise HarnessError(
            f"{cfg.path}: rung {name!r}: sensitivity takes an llm-compressor "
            "scheme (not a GGUF type, a recipe file or a checkpoint)"
        )
    return q


def measure(
    config: Path,
    rung: str,
    out: Path,
    keep: int | None = None,
    keep_scheme: str = "W8A16",
    cache: Path | None = None,
    run_cache: Path | None = None,
) -> dict[str, Any]:
    """Per-layer cost of `rung` from the ladder's cached baseline, and the proposed rung:
    its recipe written to `out`/<name>.yaml, its `[[ladder.rungs]]` entry returned."""
    from harness.run.backends import open_backend
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.probes import LogprobStore, token_stats
    from harness.run.quantize import quantize

    cfg = load_config(config)
    spec = _rung(cfg, rung)
    if keep_scheme not in SCHEMES:
        raise HarnessError(f"unknown scheme {keep_scheme!r}")
    items = load_evalset(cfg.evalsets)
    fp = checkpoint_fingerprint(cfg.baseline.path)
    # the ladder's baseline entry, as the ladder's plan keyed it
    run_as = effective_generation(cfg.baseline, cfg.generation)
    key = baseline_plan(cfg.baseline, fp, items, run_as, cfg.lm_eval, cfg.distribution).cache_key
    found = None if key is None else RunCache(run_cache).lookup(key, heal=False)
    if found is None or "continuations" not in found[1]:
        raise HarnessError(
            f"{config}: the baseline's run is not in {run_cache} (with its "
            "distribution): run the ladder first"
        )
    entry, meta = found
    if cfg.distribution.mode == "lockstep":
        raise HarnessError(
            f'{config}: [distribution] mode = "lockstep" keeps no baseline log-probs to '
            "score layers against: run the ladder in the stored mode"
        )
    store = LogprobStore.open(entry.logprob_stem)
    ids, conts = meta["prompt_ids"], [tuple(c) for c in meta["continuations"]]
    costs = []
    layers = layer_groups(cfg.baseline.path)
    for layer in layers:
        made = quantize(cfg.baseline.path, fp, only(spec, layer), cache)
        model = quantizer_of(spec).candidate(layer, made.path, cfg.baseline)
        with (
            worker.running(model.name, model.backend, "scoring"),
            open_backend(model) as backend,
        ):  # scored lazily: read it all before closing
            forced = backend.score(ids, conts, cfg.generation.batch_size)
            klds = [
                k
                for i, logp in enumerate(forced)
                for k in token_stats(store.get(i), logp, conts[i]).kld
            ]
        costs.append(LayerCost(layer, sum(klds) / max(len(klds), 1), len(klds)))
        logger.info("%s: %s alone: mean KLD %.4g", rung, layer, costs[-1].mean_kld)
    return _proposal(cfg, rung, spec, costs, propose(costs, keep), keep_scheme, len(layers), out)


def _proposal(
    cfg: CompareConfig,
    rung: str,
    spec: QuantizeSpec,
    costs: list[LayerCost],
    kept: list[str],
    keep_scheme: str,
    layers: int,
    out: Path,
) -> dict[str, Any]:
    from harness.run.quantize.llmcompressor import mixed_recipe
    from harness.store.rundir import write_atomic

    numbers = sorted(int(k.rsplit(".", 1)[1]) for k in kept)
    name = f"{rung}-{keep_scheme.lower()}-layers-" + "-".join(map(str, numbers))
    recipe = out / f"{name}.yaml"
    write_atomic(recipe, mixed_recipe(spec, numbers, keep_scheme, layers))
    total = sum(c.mean_kld for c in costs)
    return {
        "rung": rung,
        "recipe": spec.describe(),
        "keep_scheme": keep_scheme,
        "summed_layer_kld": total,
        "layers": [{"layer": c.layer, "mean_kld": c.mean_kld, "tokens": c.tokens} for c in costs],
        "keep": kept,
        "kept_share": sum(c.mean_kld for c in costs if c.layer in kept) / total,
        "proposed_name": name,
        "proposed_recipe": str(recipe),
        "toml": rung_toml(name, spec, recipe, cfg.path.parent),
    }


def rung_toml(name: str, spec: QuantizeSpec, recipe: Path, base_dir: Path) -> str:
    """The proposed rung as a `[[ladder.rungs]]` entry (TOML literal strings: no escapes)."""
    parts = [f'scheme = "{spec.scheme}"', f'method = "{spec.method}"']
    if spec.calibration is not None:
        parts.append(f"calibration = '{os.path.relpath(spec.calibration, base_dir)}'")
        parts.append(f"samples = {spec.samples}")
    parts.append(f"recipe = '{os.path.relpath(recipe, base_dir)}'")
    return f'[[ladder.rungs]]\nname = "{name}"\nquantize = {{ {", ".join(parts)} }}\n'


def run(args: argparse.Namespace) -> int:
    from harness.store.rundir import dumps, write_atomic

    out = owned_folder(
        args.out or Path("reports") / f"{args.config.stem}-sensitivity", "sensitivity"
    )
    found = measure(
        args.config,
        args.rung,
        out,
        args.keep,
        args.keep_scheme,
        args.cache,
        args.run_cache,
    )
    for row in sorted(found["layers"], key=lambda r: -r["mean_kld"]):
        print(f"{row['layer']:>24}  mean KLD {row['mean_kld']:.4g}")
    print(
        f"summed per-layer KLD {found['summed_layer_kld']:.4g}; kept in "
        f"{found['keep_scheme']}: {', '.join(found['keep'])} ({found['kept_share']:.0%} of it)"
    )
    print(f"recipe: {found['proposed_recipe']}; add this rung to the ladder and rerun it:")
    print(found["toml"], end="")
    write_atomic(out / "sensitivity.json", dumps(found))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    sens = sub.add_parser("sensitivity", help=help_of("sensitivity"))
    sens.add_argument("--config", required=True, type=Path, help="the ladder's config")
    sens.add_argument("--rung", required=True, help="an llm-compressor rung (the first failing)")
    sens.add_argument("--keep", type=int, help="layers to keep (default: half the cost)")
    sens.add_argument("--keep-scheme", default="W8A16", help="their scheme (default W8A16)")
    sens.add_argument(
        "--out",
        type=Path,
        help="folder for the recipe and sensitivity.json (default reports/<config>-sensitivity)",
    )
    sens.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    sens.add_argument("--run-cache", type=Path, default=None, help=RUNS_HELP)
    sens.set_defaults(func=run)
