"""`harness init`: a commented starter config for a model folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.records.errors import HarnessError
from harness.shell.exits import EXIT_OK
from harness.store.destinations import (
    check_file,
)

STARTER = """\
# A compare config written by `harness init` for {model}: read it top to bottom, then
#   harness validate {out}             # paths, eval sets, gate keys: no model loaded
#   harness compare --config {out} --limit 20    # a smoke run (never a pass)
#   harness compare --config {out}     # the verdict: exit 0 pass, 1 fail or undecided
# Every key: docs/configuration.md. Paths resolve from this file's folder.
name = "{name}"
# Your prompts, hard cases first (docs/evalset-format.md); `harness traffic import` makes
# a set from request logs.
evalsets = [{evalsets}]

[baseline]
name = "baseline"
path = "{model}"                 # full precision, as you would serve it

# Each candidate is a checkpoint (`path = ...`) or made here from the baseline (`quantize`,
# cached in ~/.cache/harness/quantized).
[[candidates]]
name = "q8_0"
quantize = {{ engine = "llama.cpp", type = "Q8_0" }}   # needs `make llama-cpp`

[[candidates]]
name = "w8a16"
quantize = {{ scheme = "W8A16", method = "rtn" }}       # llm-compressor
# gated = false                   # report it, do not let it decide the exit code

[generation]
max_new_tokens = {new_tokens}                # answers longer than this are cut off
batch_size = 8
# stop = ["\\n\\n"]                # decoding ends at the first stop string

[gate]
# Each rule passes when its interval is within the limit, fails when it is beyond, and is
# undecided in between (more items decide it): `harness compare` says how many.
max_weighted_accuracy_drop = 0.02   # 2 points, on the items scored against a reference
max_mean_kld = 0.05                 # nats per token, teacher-forced on the baseline's output
# max_diverged_share = 0.2          # with reference-free items: answer or meaning moved
"""


def run(args: argparse.Namespace) -> int:
    """A commented starter config for a model folder, checked by the config reader."""
    from harness.inputs.config import load_config
    from harness.store.rundir import write_atomic

    out: Path = args.out
    check_file(out, args.force)
    model = Path(args.model).expanduser()
    if not (model / "config.json").is_file() and not model.is_file():
        raise HarnessError(f"{args.model}: not a model folder (no config.json) nor a GGUF file")
    sets = args.evalset or [str(Path(__file__).parents[2] / "evalsets" / "real" / "*.jsonl")]
    context = None
    if (model / "config.json").is_file():
        context = json.loads((model / "config.json").read_text()).get("max_position_embeddings")
    # a quarter of a small model's context leaves the prompt the rest
    new_tokens = min(128, context // 4) if isinstance(context, int) and context > 0 else 128
    text = STARTER.format(
        new_tokens=new_tokens,
        model=model.absolute(),
        out=out,
        name=out.stem.replace("_", "-") or "starter",
        evalsets=", ".join(f'"{Path(s).expanduser().absolute()}"' for s in sets),
    )
    write_atomic(out, text)
    try:
        load_config(out)
    except HarnessError as exc:
        out.unlink()
        raise HarnessError(f"the starter config would not load: {exc}") from None
    print(f"wrote {out}: read it, then `harness validate {out}`")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    init = sub.add_parser("init", help=help_of("init"))
    init.add_argument("model", help="the baseline: a model folder (or a GGUF file)")
    init.add_argument("--out", type=Path, default=Path("harness.toml"), help="(harness.toml)")
    init.add_argument(
        "--evalset",
        action="append",
        default=[],
        metavar="PATH",
        help="an eval set (again for more); default: the repository's evalsets/real",
    )
    init.add_argument("--force", action="store_true", help="replace --out if it exists")
    init.set_defaults(func=run)
