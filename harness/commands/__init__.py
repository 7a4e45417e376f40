"""Every command in one home: a module per command, each with `add_parser(sub)` (its
flags) and `run(args) -> int` (its exit code), listed here in the order `harness --help`
shows them. The library functions the commands are made of are in `harness.api`."""

from __future__ import annotations

import argparse
import importlib

# The command modules, in the order of `harness --help`.
COMMANDS = (
    "validate",
    "schema",
    "quantize",
    "compare",
    "sensitivity",
    "lm_eval",
    "corpus",
    "review",
    "traffic",
    "canary",
    "init",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    from harness import __version__
    from harness.analysis.results import SCHEMA_VERSION

    parser = argparse.ArgumentParser(
        prog="harness", description="Side-by-side quality evaluation of quantized LLMs."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"harness {__version__} (results schema {SCHEMA_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").add_parser(sub)
    return parser
