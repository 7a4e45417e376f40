"""Command line: argparse wiring only. Exit codes: 0 pass, 1 a gated candidate fails,
2 the run could not be evaluated (bad input, missing model...)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from harness.evalset import EvalsetError, load_evalset

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def cmd_validate(args: argparse.Namespace) -> int:
    items = load_evalset(args.paths)
    files = Counter(item.source.path for item in items)
    hard = sum(item.hard for item in items)
    print(f"ok: {len(items)} items in {len(files)} files ({len(items) - hard} common, {hard} hard)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Side-by-side quality evaluation of quantized LLMs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check eval sets without loading a model")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="JSONL files, globs or dirs")
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except EvalsetError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
