"""`harness quantize`: a baseline and a recipe to a cached checkpoint (or GGUF). Its flags are
the declared settings of every quantizer (`QUANTIZERS`: the built-ins and installed plug-ins),
read as a config's `quantize` table is read: a quantizer is one file and one table line, and
its keys are flags here with no edit."""

from __future__ import annotations

import argparse
import shutil
import typing
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.commands.common import CACHE_HELP
from harness.records.errors import HarnessError
from harness.records.schema import REQUIRED, Key, keys_of
from harness.shell.exits import EXIT_OK
from harness.store.destinations import check_file, check_folder, copy_file, output_folder

GGUF_ENGINE = "llama.cpp"  # what --gguf TYPE stands for: --engine llama.cpp --type TYPE


def _quantizer_keys() -> dict[str, tuple[Key, list[str]]]:
    """Every quantizer's declared keys by name, with the quantizers that declare each."""
    from harness.run.quantize.quantizers import QUANTIZERS

    out: dict[str, tuple[Key, list[str]]] = {}
    for name in QUANTIZERS:
        for key in keys_of(QUANTIZERS.get(name).spec):
            out.setdefault(key.name, (key, []))[1].append(name)
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _typed(key: Key, text: Any) -> Any:
    """A flag's text as the TOML value the key would hold (the reader checks it)."""
    kind = key.kind
    parts = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    if isinstance(text, list):
        return text
    for cast in (int, float):
        if cast in parts:
            try:
                return cast(text)
            except ValueError:
                return text
    return text


def run(args: argparse.Namespace) -> int:
    from harness.inputs.config import quantize_spec
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.quantize import quantize, quantizer_of
    from harness.run.quantize.quantizers import DEFAULT, QUANTIZERS

    keys = _quantizer_keys()
    given = {n: v for n in keys if (v := getattr(args, n)) is not None}
    if args.gguf is not None:
        given["type"] = args.gguf
    engine = args.engine or (GGUF_ENGINE if "type" in given else DEFAULT)
    record = QUANTIZERS.get(engine).spec
    missing = [
        _flag(k.name) for k in keys_of(record) if k.default is REQUIRED and k.name not in given
    ]
    if missing:
        short = f", or --gguf TYPE ({GGUF_ENGINE})" if engine == DEFAULT else ""
        raise HarnessError(f"quantize: give {' and '.join(missing)} ({engine}){short}")
    owned = {k.name for k in keys_of(record)}
    stray = sorted(_flag(n) for n in given if n not in owned)
    if stray:
        what = "is not a setting" if len(stray) == 1 else "are not settings"
        raise HarnessError(f"quantize: {', '.join(stray)} {what} of {engine}")
    table = {"engine": engine, **{n: _typed(keys[n][0], v) for n, v in given.items()}}
    spec = quantize_spec(table, "harness quantize", Path.cwd())
    if args.out is not None:  # before any work: a refused --out costs nothing
        if quantizer_of(spec).result(Path("entry")) != Path("entry"):  # a file, not a folder
            check_file(args.out, args.force)
        else:
            check_folder(args.out, "checkpoint")
    made = quantize(args.baseline, checkpoint_fingerprint(args.baseline), spec, args.cache)
    if args.out and made.path.is_file():
        copy_file(made.path, args.out, args.force)
    elif args.out:
        with output_folder(args.out, "checkpoint") as tmp:
            shutil.copytree(made.path, tmp, dirs_exist_ok=True)
    where = args.out or made.path
    print(f"{'cached' if made.cached else f'made in {made.seconds:.0f}s'}: {where}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    from harness.run.quantize.quantizers import DEFAULT, QUANTIZERS

    quant = sub.add_parser(
        "quantize",
        help=help_of("quantize"),
        description="Each quantizer's declared settings are flags (docs/configuration.md, "
        "the quantize tables); --engine picks the quantizer.",
    )
    quant.add_argument("--baseline", required=True, help="baseline checkpoint dir")
    quant.add_argument(
        "--engine",
        choices=list(QUANTIZERS),
        help=f"the quantizer ({DEFAULT}; {GGUF_ENGINE} when --type or --gguf is given)",
    )
    for name, (key, engines) in _quantizer_keys().items():
        choices = (
            typing.get_args(key.kind) if typing.get_origin(key.kind) is typing.Literal else None
        )
        many = typing.get_origin(key.kind) is tuple
        default = "" if key.default is REQUIRED or key.default in (None, ()) else f"; {key.default}"
        quant.add_argument(
            _flag(name),
            dest=name,
            choices=choices,
            action="append" if many else "store",
            metavar=name.upper(),
            help=f"{key.doc} ({', '.join(engines)}{default})",
        )
    quant.add_argument(
        "--gguf", metavar="TYPE", help=f"short for --engine {GGUF_ENGINE} --type TYPE"
    )
    quant.add_argument(
        "--out", type=Path, help="copy the checkpoint here (default: print the cache dir)"
    )
    quant.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    quant.add_argument(
        "--force", action="store_true", help="replace an existing --out file (a GGUF)"
    )
    quant.set_defaults(func=run)
