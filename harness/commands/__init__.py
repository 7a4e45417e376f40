"""Every command in one home: a module per command, each with `add_parser(sub)` (its
flags) and `run(args) -> int` (its exit code). `COMMANDS` lists each command word with its
module and its one-line help, in the order `harness --help` shows them; the library
functions the commands are made of are in `harness.api`."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# word -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check eval sets and configs without loading a model"),
    "schema": ("schema", "the config file's JSON Schema (editors validate TOML with it)"),
    "quantize": ("quantize", "baseline + recipe + calibration set -> checkpoint dir or GGUF file"),
    "compare": ("compare", "the main job: run, score, pair, report, gate"),
    "ladder": ("compare", "a precision ladder ([ladder] rungs): the lightest rung that passes"),
    "sweep": ("compare", "the same as ladder"),
    "sensitivity": ("sensitivity", "per-layer cost of a ladder rung and a mixed recipe to try"),
    "export-lm-eval": ("lm_eval", "write eval sets as lm-eval task YAMLs + data"),
    "corpus": ("corpus", "perplexity and KLD over a text file, as llama-perplexity computes them"),
    "review": ("review", "hand review verdicts"),
    "traffic": ("traffic", "eval sets from production request logs"),
    "canary": (
        "canary",
        "watch a live split between the full-precision and the quantized arm; decide",
    ),
    "init": ("init", "write a commented starter config for a model folder"),
    "report": ("report", "re-render every artifact of a run folder from disk"),
}


def help_of(word: str) -> str:
    return COMMANDS[word][1]


def build_parser(words: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Given the command line's `words`, only the module of the command they
    name is imported (its flags); every other command is its help line, so that a command
    starts without loading what the others need. Without `words`, every command's flags."""
    from harness import __version__
    from harness.records.versions import SCHEMA_VERSION

    parser = argparse.ArgumentParser(
        prog="harness", description="Side-by-side quality evaluation of quantized LLMs."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"harness {__version__} (results schema {SCHEMA_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = None
    if words is not None:
        word = next((w for w in words if not w.startswith("-")), None)
        chosen = COMMANDS[word][0] if word in COMMANDS else ""
    added: set[str] = set()
    for word, (module, help_) in COMMANDS.items():
        if chosen is None or module == chosen:
            if module not in added:
                importlib.import_module(f"harness.commands.{module}").add_parser(sub)
                added.add(module)
        else:
            sub.add_parser(word, help=help_)
    return parser
