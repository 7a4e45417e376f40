"""`harness export-lm-eval`: eval sets as lm-eval task YAMLs and data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.shell.exits import EXIT_OK
from harness.store.destinations import (
    output_folder,
)


def run(args: argparse.Namespace) -> int:
    from harness.run.lmeval import export_tasks

    with output_folder(args.out, "lm-eval tasks") as tmp:
        written = export_tasks(args.paths, args.out, args.max_gen_toks, into=tmp)
    for path in written:
        print(path)
    hint = f"lm_eval --model hf --model_args pretrained=DIR --include_path {args.out} --tasks TASK"
    print(f"run them with: {hint}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    export = sub.add_parser("export-lm-eval", help=help_of("export-lm-eval"))
    export.add_argument("paths", nargs="+", metavar="EVALSET", help="eval-set files or globs")
    export.add_argument("--out", type=Path, required=True, help="the task folder to write")
    export.add_argument(
        "--max-gen-toks", type=int, default=32, help="tokens a generation may take (32)"
    )
    export.set_defaults(func=run)
