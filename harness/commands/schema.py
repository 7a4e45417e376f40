"""`harness schema`: the config's JSON Schema or its Markdown reference."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import help_of
from harness.shell.exits import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """The config's JSON Schema, or its reference in Markdown, from the declarations."""
    from harness.render.configuration import json_text, markdown

    print(markdown() if args.markdown else json_text(), end="")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    schema = sub.add_parser("schema", help=help_of("schema"))
    schema.add_argument(
        "--markdown", action="store_true", help="the configuration reference instead"
    )
    schema.set_defaults(func=run)
