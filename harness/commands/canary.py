"""`harness canary`: watch a live split and decide (docs/canary.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands import help_of


def run(args: argparse.Namespace) -> int:
    """Watch a live split and decide (docs/canary.md): cycles until SIGTERM, or one with
    --once (exit 0 promote, 1 roll back, 3 continue)."""
    import time

    from harness.inputs.canary_config import load_canary_config
    from harness.render.canary import metrics_text, views
    from harness.run.canary import EXIT, Canary
    from harness.run.canary_http import Board, serve

    cfg = load_canary_config(args.config)
    if args.import_review is not None:
        from harness.run.canary import import_review

        count = import_review(cfg, args.import_review)
        print(f"imported {count} verdict(s) from {args.import_review}")
        return 0
    watch = Canary(cfg)
    server = None
    try:
        status = watch.cycle(views)
        print(f"{cfg.name}: {status['decision']} ({status['shadowed']} shadowed)")
        if args.once:
            return EXIT[status["decision"]]
        board = Board(status, metrics_text(status))
        if cfg.canary.listen is not None:
            host, _, port = cfg.canary.listen.rpartition(":")
            server = serve(board, host or "127.0.0.1", int(port))
        while True:
            time.sleep(cfg.canary.interval_s)
            status = watch.cycle(views)
            board.set(status, metrics_text(status))
    finally:
        if server is not None:
            server.shutdown()
        watch.close()


def add_parser(sub: Any) -> None:
    canary = sub.add_parser(
        "canary",
        help=help_of("canary"),
        description="Follow the gateway's request logs, shadow a share of the canary arm's "
        "requests to the baseline, and say promote / continue / roll back with an error rate "
        "that holds however often it is asked (docs/canary.md). Serves the decision to Argo "
        "Rollouts and Flagger when [canary] listen is set.",
    )
    canary.add_argument("--config", type=Path, required=True, help="a canary config (TOML)")
    canary.add_argument(
        "--once", action="store_true", help="one cycle: exit 0 promote, 1 roll back, 3 continue"
    )
    canary.add_argument(
        "--import-review",
        type=Path,
        metavar="REVIEW",
        help="merge a review.json exported from the dashboard, then exit (the running canary "
        "counts it on its next cycle)",
    )
    canary.set_defaults(func=run)
