"""`harness corpus`: perplexity and KLD over a text file, as llama-perplexity computes them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.commands.common import (
    CACHE_HELP,
)
from harness.records import (
    CompareConfig,
    ModelSpec,
)
from harness.records.errors import HarnessError
from harness.shell.exits import EXIT_OK
from harness.store.destinations import (
    owned_folder,
)
from harness.store.rundir import (
    dumps,
    write_atomic,
)


def corpus_models(cfg: CompareConfig, cache: Path | None = None) -> list[ModelSpec]:
    """The baseline and every candidate (quantized when missing, cached)."""
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.candidates import ready_candidate

    baseline_fp = checkpoint_fingerprint(cfg.baseline.path)
    ready = [ready_candidate(c, cfg.baseline, baseline_fp, cache) for c in cfg.candidates]
    return [cfg.baseline, *(c.spec for c in ready)]


def corpus(config: Path, out: Path | None, cache: Path | None = None) -> tuple[Any, str]:
    """`harness corpus`: every model of the config (candidates quantized as for compare) on
    the `[corpus]` text; writes corpus.json and corpus.md to `out`."""
    from harness.inputs.config import load_config
    from harness.run.corpus import render_table, run_corpus

    cfg = load_config(config)
    if cfg.corpus is None:
        raise HarnessError(f"{config}: no [corpus] table (text, context, chunks, reference)")
    folder = owned_folder(out or Path("reports") / f"{cfg.name}-corpus", "corpus")
    result = run_corpus(
        corpus_models(cfg, cache), cfg.corpus, cfg.corpus.reference or cfg.baseline.name
    )
    table = render_table(result)
    write_atomic(folder / "corpus.json", dumps(result.to_json()))
    write_atomic(folder / "corpus.md", table)
    return result, table


def run(args: argparse.Namespace) -> int:

    _, table = corpus(args.config, args.out, args.cache)
    print(table, end="")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    corpus = sub.add_parser("corpus", help=help_of("corpus"))
    corpus.add_argument("--config", required=True, type=Path, help="a config with [corpus]")
    corpus.add_argument(
        "--out",
        type=Path,
        help="folder for corpus.json and corpus.md (default reports/<name>-corpus)",
    )
    corpus.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    corpus.set_defaults(func=run)
