"""`harness quantize`: a baseline and a recipe to a cached checkpoint (or GGUF)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from harness.commands.common import (
    CACHE_HELP,
)
from harness.records import GGUF_TYPES, METHODS, SCHEMES, GgufSpec, QuantizeSpec
from harness.records.errors import HarnessError
from harness.shell.exits import EXIT_OK
from harness.store.outputs import (
    check_file,
    check_folder,
    copy_file,
    output_folder,
)


def run(args: argparse.Namespace) -> int:
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.quantize import quantize, quantizer_of

    spec: QuantizeSpec | GgufSpec
    if args.gguf is not None:
        spec = GgufSpec(type=args.gguf, imatrix=args.imatrix)
    elif args.scheme is None or args.method is None:
        raise HarnessError("quantize: give --scheme and --method (llm-compressor) or --gguf TYPE")
    else:
        spec = QuantizeSpec(
            scheme=args.scheme,
            method=args.method,
            calibration=args.calibration,
            samples=args.samples,
            max_seq_length=args.max_seq_length,
        )
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
    quant = sub.add_parser(
        "quantize", help="baseline + recipe + calibration set -> checkpoint dir or GGUF file"
    )
    quant.add_argument("--baseline", required=True, help="baseline checkpoint dir")
    quant.add_argument("--scheme", choices=SCHEMES, help="llm-compressor: the weight scheme")
    quant.add_argument(
        "--method", choices=METHODS, help="llm-compressor: rtn (round to nearest) or gptq"
    )
    quant.add_argument(
        "--gguf",
        choices=GGUF_TYPES,
        metavar="TYPE",
        help="a GGUF with llama.cpp instead (Q8_0, Q4_K_M, ...)",
    )
    quant.add_argument("--imatrix", help="calibration JSONL for llama-imatrix (with --gguf)")
    quant.add_argument("--calibration", help="calibration JSONL (required by gptq)")
    quant.add_argument(
        "--samples", type=int, default=128, help="gptq: calibration samples used (128)"
    )
    quant.add_argument(
        "--max-seq-length", type=int, default=512, help="gptq: tokens a sample is cut to (512)"
    )
    quant.add_argument(
        "--out", type=Path, help="copy the checkpoint here (default: print the cache dir)"
    )
    quant.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    quant.add_argument(
        "--force", action="store_true", help="replace an existing --out file (a GGUF)"
    )
    quant.set_defaults(func=run)
