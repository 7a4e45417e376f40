"""`harness traffic import` and `sample`: eval sets from production request logs."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from harness.commands import help_of
from harness.commands.common import (
    RUNS_HELP,
)
from harness.inputs.evalset import load_evalset
from harness.records import (
    CompareConfig,
)
from harness.records.errors import HarnessError
from harness.records.neutral import terminal_text
from harness.shell.exits import EXIT_OK
from harness.store.destinations import (
    check_file,
    check_not_input,
)
from harness.store.rundir import (
    dumps,
)

logger = logging.getLogger(__name__)


def sample_traffic(
    cfg: CompareConfig, force: bool = False, run_cache: Path | None = None
) -> dict[str, Any]:
    """`harness traffic sample`: mine the `[traffic]` pool with the baseline, draw the weighted
    eval set (and a calibration set from the rest), write them and the signals beside; returns
    the summary written as `<out>.sample.json`."""
    from harness.analysis.sampling import HARD, check_pool, draw, hard_items, weight
    from harness.run.mining import mine, signal_rows
    from harness.store.destinations import check_file, check_not_input
    from harness.store.runcache import RunCache
    from harness.store.rundir import write_all

    t = cfg.traffic
    if t is None:
        raise HarnessError(f"{cfg.path}: no [traffic] table: nothing to sample")
    out = Path(t.out)
    files = {
        "sample": out,
        "signals": t.beside("signals.jsonl"),
        "summary": t.beside("sample.json"),
    }
    if t.calibration:
        files["calibration"] = t.beside("calibration.jsonl")
    from harness.inputs.evalset import expand_paths

    sources, _ = expand_paths([t.pool])  # a file, a glob or a folder, as an eval set may be
    for path in files.values():
        check_not_input(path, sources)
        check_file(path, force)
    items = load_evalset([t.pool])  # validated: file, line and id named on a bad line
    lines = {}  # each item's line as written in the pool
    for path in sources:
        for text in path.read_text(encoding="utf-8").splitlines():
            if text.strip():
                obj = json.loads(text)
                lines[obj["id"]] = obj
    if any(item.logged_output for item in items):
        # A pool with production's answers is for replaying them: an item without one (a
        # request that failed, a log line without its answer) cannot be replayed, so it is
        # never drawn, and the weights then speak for the answered traffic.
        unanswered = {item.id for item in items if not item.logged_output}
        if unanswered:
            logger.warning(
                "%d of %d pool items have no logged answer and are not drawn (a replay needs "
                "the answer production served)",
                len(unanswered),
                len(items),
            )
            items = [item for item in items if item.id not in unanswered]
            lines = {k: v for k, v in lines.items() if k not in unanswered}
    check_pool(lines, t.size, t.calibration)  # before the baseline mines anything
    signals = mine(cfg.baseline, items, cfg.generation, RunCache(run_cache))
    values = {s.id: s.value(t.signal) for s in signals}
    hard = hard_items(values, t.signal, t.hard_share)
    ids = [i.id for i in items]
    drawn = draw(ids, hard, t.size, t.hard_fraction, t.seed, t.calibration)
    chosen, calib = set(drawn.chosen), set(drawn.calibration)
    sample_lines, rows = [], []
    for s, row in zip(signals, signal_rows(signals), strict=True):
        base = float(lines[s.id].get("weight", 1.0))
        row |= {
            "stratum": drawn.stratum_of[s.id],
            "inclusion": drawn.inclusion(s.id),
            "pool_weight": base,
            "drawn": s.id in chosen,
            "calibration": s.id in calib,
        }
        if s.id in chosen:
            row["weight"] = weight(base, drawn.inclusion(s.id))
            line = dict(lines[s.id])
            line["weight"] = row["weight"]
            line["difficulty"] = "hard" if s.id in hard else "common"
            sample_lines.append(line)
        rows.append(row)
    cut = [v for i in hard if (v := values[i]) is not None]
    summary: dict[str, Any] = {
        "pool": t.pool,
        "pool_items": len(items),
        "pool_sha256": hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest(),
        "baseline": cfg.baseline.name,
        "signal": t.signal,
        "hard_cut": (max(cut) if t.signal != "mean_entropy" else min(cut)) if cut else None,
        "strata": [
            {"name": s.name, "pool": s.pool, "drawn": s.drawn, "inclusion": s.inclusion}
            for s in drawn.strata
        ],
        "size": len(drawn.chosen),
        "calibration": len(drawn.calibration),
        "seed": t.seed,
        "files": {k: str(v) for k, v in files.items()},
    }
    texts = {
        files["sample"]: _jsonl(sample_lines),
        files["signals"]: _jsonl(rows),
        files["summary"]: dumps(summary),
    }
    if t.calibration:
        texts[files["calibration"]] = _jsonl([lines[i] for i in ids if i in calib])
    write_all(texts)
    hard_drawn = next(s.drawn for s in drawn.strata if s.name == HARD)
    logger.info(
        "drew %d of %d items (%d hard), %d for calibration",
        len(chosen),
        len(ids),
        hard_drawn,
        len(calib),
    )
    return summary


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _traffic_formats() -> list[str]:
    from harness.inputs.traffic import TRAFFIC_FORMATS

    return TRAFFIC_FORMATS.names()


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per declared field of ImportSettings: its default and doc from there."""
    from harness.inputs.importer import ImportSettings
    from harness.records.schema import keys_of

    for key in keys_of(ImportSettings):
        flag = "--" + key.name.replace("_", "-")
        if key.kind is bool:
            parser.add_argument(flag, action="store_true", help=key.doc)
        else:
            parser.add_argument(flag, default=key.default, help=f"{key.doc} ({key.default})")


def _import_settings(args: argparse.Namespace) -> Any:
    """The flags read against their declarations (a value out of range: one line)."""
    from harness.inputs.importer import ImportSettings
    from harness.records.schema import check, keys_of

    values = {}
    for key in keys_of(ImportSettings):
        value = getattr(args, key.name)
        if isinstance(value, str) and key.kind in (int, float):
            with contextlib.suppress(ValueError):  # `check` names what was expected
                value = key.kind(value)
        values[key.name] = check(key, value, "--" + key.name.replace("_", "-"))
    return ImportSettings(**values)


def run_import(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from harness.inputs.importer import import_traffic
    from harness.store.rundir import write_all

    report = args.out.with_name(args.out.name.removesuffix(".jsonl") + ".cleaning.json")
    for path in (args.out, report):
        check_not_input(path, args.logs)
        check_file(path, args.force)
    settings = _import_settings(args)
    context = None
    if args.baseline:
        from harness.run.backends.hf import context_fits

        context = context_fits(str(args.baseline))
    items, cleaning = import_traffic(args.logs, settings, args.format, context)
    lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    table = {"logs": [str(p) for p in args.logs], "settings": asdict(settings)}
    table |= cleaning.as_dict()
    write_all({args.out: lines, report: json.dumps(table, indent=2, ensure_ascii=False) + "\n"})
    width = max(len(k) for k, _ in cleaning.rows())
    for key, value in cleaning.rows():
        print(f"{key:<{width}}  {value:>9,}")
    for line in cleaning.bad[:20]:
        print(f"unreadable: {terminal_text(line)}", file=sys.stderr)
    if len(cleaning.bad) > 20:
        print(f"unreadable: ... {len(cleaning.bad) - 20:,} more in {report}", file=sys.stderr)
    print(f"wrote {args.out} ({len(items):,} items) and {report}")
    return EXIT_OK


def run_sample(args: argparse.Namespace) -> int:
    from harness.inputs.config import load_config

    summary = sample_traffic(load_config(args.config), args.force, args.run_cache)
    print(f"pool {summary['pool']}: {summary['pool_items']:,} items, cut on {summary['signal']}")
    for s in summary["strata"]:
        weight = f"weight x{1 / s['inclusion']:.3g}" if s["inclusion"] else "none drawn"
        print(f"  {s['name']:<5} {s['pool']:>7,} in the pool, {s['drawn']:>6,} drawn ({weight})")
    if summary["calibration"]:
        print(f"  calibration: {summary['calibration']:,} items from the rest of the pool")
    print("wrote " + ", ".join(summary["files"].values()))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    traffic = sub.add_parser("traffic", help=help_of("traffic"))
    traffic_sub = traffic.add_subparsers(dest="traffic_command", required=True)
    timp = traffic_sub.add_parser(
        "import",
        help="request logs -> a cleaned, reference-free eval set (docs/traffic.md)",
    )
    timp.add_argument(
        "logs", type=Path, nargs="+", metavar="LOG", help="request logs (JSONL), any format"
    )
    timp.add_argument("--out", type=Path, required=True, help="the eval set (JSONL) to write")
    timp.add_argument("--force", action="store_true", help="replace --out if it exists")
    timp.add_argument("--format", choices=_traffic_formats(), help="skip detection")
    timp.add_argument(
        "--baseline", type=Path, help="model folder: set aside requests over its context"
    )
    _settings_flags(timp)
    timp.set_defaults(func=run_import)
    tsample = traffic_sub.add_parser(
        "sample",
        help="run the baseline over a pool, draw a weighted eval set that oversamples the "
        "items it is least sure of ([traffic] table; docs/traffic.md)",
    )
    tsample.add_argument("--config", type=Path, required=True, help="a config with [traffic]")
    tsample.add_argument("--force", action="store_true", help="replace the files it writes")
    tsample.add_argument("--run-cache", type=Path, default=None, help=RUNS_HELP)
    tsample.set_defaults(func=run_sample)
