"""`harness validate`: eval sets and configs checked without loading a model."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.shell.exits import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Eval sets, and compare configs (*.toml) with the eval sets they name."""
    from harness.analysis.metrics import gate_table
    from harness.inputs.config import check_pool, load_config
    from harness.inputs.evalset import load_evalset

    configs = [load_config(Path(p)) for p in args.paths if p.endswith(".toml")]
    for cfg in configs:
        if cfg.sequential is not None:
            check_pool(cfg, len(load_evalset(cfg.evalsets)))
        rules = ", ".join(f"{k}={v}" for k, v in gate_table(cfg.gate).items() if v is not None)
        print(f"ok: {cfg.path}: {len(cfg.candidates)} candidate(s); gate: {rules}")
    patterns = [p for p in args.paths if not p.endswith(".toml")]
    patterns += [e for cfg in configs for e in cfg.evalsets]
    if not patterns:
        return EXIT_OK
    items = load_evalset(patterns)
    files = Counter(item.source.path for item in items)
    hard = sum(item.hard for item in items)
    print(f"ok: {len(items)} items in {len(files)} files ({len(items) - hard} common, {hard} hard)")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    validate = sub.add_parser("validate", help=help_of("validate"))
    validate.add_argument(
        "paths", nargs="+", metavar="PATH", help="JSONL files, globs, dirs or *.toml configs"
    )
    validate.set_defaults(func=run)
