"""Command line: argparse wiring only; the work is in `harness.pipeline`.

Exit codes: 0 every gated candidate passes · 1 a gated candidate fails its gate (and for
nothing else) · 2 the run could not be evaluated (a `HarnessError` — bad input, missing
model, unknown gate key — or any other failure, in one line, the traceback in a log file) ·
130 interrupted (SIGINT) · 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.analysis.gate import evidence_sentence
from harness.analysis.results import Results
from harness.records import GGUF_TYPES, METHODS, SCHEMES, GgufSpec, QuantizeSpec
from harness.records.errors import HarnessError
from harness.records.neutral import terminal_text
from harness.run import console, worker
from harness.store.outputs import (
    check_file,
    check_folder,
    check_not_input,
    copy_file,
    output_folder,
    owned_folder,
)

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report them
RUNS_HELP = "model runs kept and resumed from (default: runs/ in the harness home)"
CACHE_HELP = "quantized checkpoints (default: quantized/ in the harness home, ~/.cache/harness)"


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def cmd_validate(args: argparse.Namespace) -> int:
    """Eval sets, and compare configs (*.toml) with the eval sets they name."""
    from harness.analysis.candidate_metrics import gate_table
    from harness.inputs.config import check_pool, load_config
    from harness.inputs.evalset import load_evalset

    configs = [load_config(Path(p)) for p in args.paths if p.endswith(".toml")]
    for cfg in configs:
        if cfg.sequential is not None:
            check_pool(cfg, len(load_evalset(cfg.evalsets)))
        rules = ", ".join(f"{k}={v}" for k, v in gate_table(cfg.gate).items() if v is not None)
        print(f"ok: {cfg.path}: {len(cfg.candidates)} candidate(s); gate: {rules}")
    patterns = [p for p in args.paths if not p.endswith(".toml")]
    patterns += [e for cfg in configs for e in cfg.evalsets]
    if not patterns:
        return EXIT_OK
    items = load_evalset(patterns)
    files = Counter(item.source.path for item in items)
    hard = sum(item.hard for item in items)
    print(f"ok: {len(items)} items in {len(files)} files ({len(items) - hard} common, {hard} hard)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """The config's JSON Schema, or its reference in Markdown, from the declarations."""
    from harness.render.configuration import json_text, markdown

    print(markdown() if args.markdown else json_text(), end="")
    return EXIT_OK


def cmd_corpus(args: argparse.Namespace) -> int:
    from harness.pipeline import corpus

    _, table = corpus(args.config, args.out, args.cache)
    print(table, end="")
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
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


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.inputs.config import apply_overrides, load_config
    from harness.pipeline import compare

    cfg = apply_overrides(load_config(args.config), args.evalset, args.candidate)
    if args.command in ("ladder", "sweep") and cfg.ladder is None:
        raise HarnessError(f"{args.config}: no [ladder] table: list the rungs as [[ladder.rungs]]")
    out = args.out or Path("reports") / cfg.name
    return report_verdicts(compare(cfg, out, args.cache, args.run_cache, args.limit), out)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from harness.run.sensitivity import measure
    from harness.store.rundir import dumps, write_atomic

    out = owned_folder(
        args.out or Path("reports") / f"{args.config.stem}-sensitivity", "sensitivity"
    )
    found = measure(
        args.config,
        args.rung,
        out,
        args.keep,
        args.keep_scheme,
        args.cache,
        args.run_cache,
    )
    for row in sorted(found["layers"], key=lambda r: -r["mean_kld"]):
        print(f"{row['layer']:>24}  mean KLD {row['mean_kld']:.4g}")
    print(
        f"summed per-layer KLD {found['summed_layer_kld']:.4g}; kept in "
        f"{found['keep_scheme']}: {', '.join(found['keep'])} ({found['kept_share']:.0%} of it)"
    )
    print(f"recipe: {found['proposed_recipe']}; add this rung to the ladder and rerun it:")
    print(found["toml"], end="")
    write_atomic(out / "sensitivity.json", dumps(found))
    return EXIT_OK


def cmd_export_lm_eval(args: argparse.Namespace) -> int:
    from harness.run.lmeval import export_tasks

    with output_folder(args.out, "lm-eval tasks") as tmp:
        written = export_tasks(args.paths, args.out, args.max_gen_toks, into=tmp)
    for path in written:
        print(path)
    hint = f"lm_eval --model hf --model_args pretrained=DIR --include_path {args.out} --tasks TASK"
    print(f"run them with: {hint}")
    return EXIT_OK


def cmd_review_import(args: argparse.Namespace) -> int:
    from harness.pipeline import import_review

    count, results = import_review(args.run_dir, args.review)
    print(f"imported {count} verdict(s) from {args.review}")
    return report_verdicts(results, args.run_dir)


def cmd_traffic_import(args: argparse.Namespace) -> int:
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


def cmd_traffic_sample(args: argparse.Namespace) -> int:
    from harness.inputs.config import load_config
    from harness.pipeline import sample_traffic

    summary = sample_traffic(load_config(args.config), args.force, args.run_cache)
    print(f"pool {summary['pool']}: {summary['pool_items']:,} items, cut on {summary['signal']}")
    for s in summary["strata"]:
        weight = f"weight x{1 / s['inclusion']:.3g}" if s["inclusion"] else "none drawn"
        print(f"  {s['name']:<5} {s['pool']:>7,} in the pool, {s['drawn']:>6,} drawn ({weight})")
    if summary["calibration"]:
        print(f"  calibration: {summary['calibration']:,} items from the rest of the pool")
    print("wrote " + ", ".join(summary["files"].values()))
    return EXIT_OK


STARTER = """\
# A compare config written by `harness init` for {model}: read it top to bottom, then
#   harness validate {out}             # paths, eval sets, gate keys: no model loaded
#   harness compare --config {out} --limit 20    # a smoke run (never a pass)
#   harness compare --config {out}     # the verdict: exit 0 pass, 1 fail or undecided
# Every key: docs/configuration.md. Paths resolve from this file's folder.
name = "{name}"
# Your prompts, hard cases first (docs/evalset-format.md); `harness traffic import` makes
# a set from request logs.
evalsets = [{evalsets}]

[baseline]
name = "baseline"
path = "{model}"                 # full precision, as you would serve it

# Each candidate is a checkpoint (`path = ...`) or made here from the baseline (`quantize`,
# cached in ~/.cache/harness/quantized).
[[candidates]]
name = "q8_0"
quantize = {{ engine = "llama.cpp", type = "Q8_0" }}   # needs `make llama-cpp`

[[candidates]]
name = "w8a16"
quantize = {{ scheme = "W8A16", method = "rtn" }}       # llm-compressor
# gated = false                   # report it, do not let it decide the exit code

[generation]
max_new_tokens = {new_tokens}                # answers longer than this are cut off
batch_size = 8
# stop = ["\\n\\n"]                # decoding ends at the first stop string

[gate]
# Each rule passes when its interval is within the limit, fails when it is beyond, and is
# undecided in between (more items decide it): `harness compare` says how many.
max_weighted_accuracy_drop = 0.02   # 2 points, on the items scored against a reference
max_mean_kld = 0.05                 # nats per token, teacher-forced on the baseline's output
# max_diverged_share = 0.2          # with reference-free items: answer or meaning moved
"""


def cmd_canary(args: argparse.Namespace) -> int:
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


def cmd_init(args: argparse.Namespace) -> int:
    """A commented starter config for a model folder, checked by the config reader."""
    from harness.inputs.config import load_config
    from harness.store.outputs import check_file
    from harness.store.rundir import write_atomic

    out: Path = args.out
    check_file(out, args.force)
    model = Path(args.model).expanduser()
    if not (model / "config.json").is_file() and not model.is_file():
        raise HarnessError(f"{args.model}: not a model folder (no config.json) nor a GGUF file")
    sets = args.evalset or [str(Path(__file__).parent.parent / "evalsets" / "real" / "*.jsonl")]
    context = None
    if (model / "config.json").is_file():
        context = json.loads((model / "config.json").read_text()).get("max_position_embeddings")
    # a quarter of a small model's context leaves the prompt the rest
    new_tokens = min(128, context // 4) if isinstance(context, int) and context > 0 else 128
    text = STARTER.format(
        new_tokens=new_tokens,
        model=model.absolute(),
        out=out,
        name=out.stem.replace("_", "-") or "starter",
        evalsets=", ".join(f'"{Path(s).expanduser().absolute()}"' for s in sets),
    )
    write_atomic(out, text)
    try:
        load_config(out)
    except HarnessError as exc:
        out.unlink()
        raise HarnessError(f"the starter config would not load: {exc}") from None
    print(f"wrote {out}: read it, then `harness validate {out}`")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from harness.pipeline import rebuild

    return report_verdicts(rebuild(args.run_dir), args.run_dir)


def report_verdicts(results: Results, out: Path) -> int:
    print(f"report: {out / 'report.html'}")
    if results.baseline_note is not None:
        print(f"NOTE  {results.baseline_note}")
    for note in results.determinism:
        print(note)
    for c in results.candidates:
        label = (
            "batching noise floor"
            if c.info.batched
            else "noise floor"
            if c.noise_floor
            else "gated"
            if c.gated
            else "not gated"
        )
        print(f"{c.verdict.upper():4}  {c.name} ({label})")
        for reason in c.reasons:
            print(f"      - {reason}")
        for rule in c.rules:
            if rule.evidence is not None and not rule.passed:
                print(f"        {rule.rule}: {evidence_sentence(rule)}")
    if results.ladder is not None:
        return report_ladder(results)
    failed = any(c.gated and c.verdict != "pass" for c in results.candidates)
    return EXIT_FAIL if failed else EXIT_OK


def report_ladder(results: Results) -> int:
    """The ladder's table, its answer and the release decision (which is the exit code)."""
    from harness.render.markdown import ladder_table

    ladder = results.ladder
    if ladder is None:
        return EXIT_ERROR
    print()
    print("\n".join(ladder_table(ladder)))
    print()
    print(ladder.answer)
    for cliff in ladder.cliffs:
        print(
            f"cliff ({cliff.slice}; exploratory): {cliff.heavier} -> {cliff.lighter}: drop "
            f"{100 * cliff.before:.1f} -> {100 * cliff.after:.1f} points"
        )
    print(f"ladder: {ladder.decision.upper()}: {ladder.decision_reason}")
    return EXIT_OK if ladder.decision == "pass" else EXIT_FAIL


HELP = {
    "compare": "the main job: run, score, pair, report, gate",
    "ladder": "a precision ladder ([ladder] rungs): the lightest rung that passes",
    "sweep": "the same as ladder",
}


EXAMPLES = {
    "compare": """examples:
  harness compare --config demo.toml                      # the demo: reports/demo/
  harness compare --config my.toml --limit 20             # a smoke run: never a pass
  harness compare --config my.toml --evalset hard.jsonl   # another eval set, same models
  harness compare --config my.toml --candidate q4=/models/q4   # another checkpoint for q4
exit codes: 0 every gated candidate passes · 1 one fails or is undecided · 2 an error""",
    "ladder": """examples:
  harness ladder --config ladder.toml      # the lightest rung that passes the gate
exit codes: 0 the release decision is pass · 1 it is not · 2 an error""",
}
EXAMPLES["sweep"] = EXAMPLES["ladder"].replace("harness ladder", "harness sweep")


def _compare_parser(sub: Any, command: str) -> None:
    """compare, ladder and sweep take the same flags (a ladder is a compare of its rungs)."""
    compare = sub.add_parser(
        command,
        help=HELP[command],
        description=HELP[command],
        epilog=EXAMPLES[command],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "--config",
        required=True,
        type=Path,
        help="the compare config (TOML; docs/configuration.md); its paths resolve from its folder",
    )
    compare.add_argument("--out", type=Path, help="run folder (default reports/<name>)")
    compare.add_argument(
        "--evalset",
        action="append",
        default=[],
        metavar="PATH",
        help="replaces the config's evalsets",
    )
    compare.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a checkpoint for candidate NAME",
    )
    compare.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=CACHE_HELP,
    )
    compare.add_argument(
        "--run-cache",
        type=Path,
        default=None,
        help="model runs: the baseline's, a ladder's, what a killed run resumes from "
        "(default: runs/ in the harness home)",
    )
    compare.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="a smoke run: only the first N items of the pool's seeded order; it never "
        "passes the gate (undecided, exit 1, unless a rule fails)",
    )
    compare.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Side-by-side quality evaluation of quantized LLMs."
    )
    from harness import __version__
    from harness.analysis.results import SCHEMA_VERSION

    parser.add_argument(
        "--version",
        action="version",
        version=f"harness {__version__} (results schema {SCHEMA_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser(
        "validate", help="check eval sets and configs without loading a model"
    )
    validate.add_argument(
        "paths", nargs="+", metavar="PATH", help="JSONL files, globs, dirs or *.toml configs"
    )
    validate.set_defaults(func=cmd_validate)

    schema = sub.add_parser(
        "schema", help="the config file's JSON Schema (editors validate TOML with it)"
    )
    schema.add_argument(
        "--markdown", action="store_true", help="the configuration reference instead"
    )
    schema.set_defaults(func=cmd_schema)

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
    quant.set_defaults(func=cmd_quantize)

    for command in ("compare", "ladder", "sweep"):
        _compare_parser(sub, command)

    sens = sub.add_parser(
        "sensitivity", help="per-layer cost of a ladder rung and a mixed recipe to try"
    )
    sens.add_argument("--config", required=True, type=Path, help="the ladder's config")
    sens.add_argument("--rung", required=True, help="an llm-compressor rung (the first failing)")
    sens.add_argument("--keep", type=int, help="layers to keep (default: half the cost)")
    sens.add_argument("--keep-scheme", default="W8A16", help="their scheme (default W8A16)")
    sens.add_argument(
        "--out",
        type=Path,
        help="folder for the recipe and sensitivity.json (default reports/<config>-sensitivity)",
    )
    sens.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    sens.add_argument("--run-cache", type=Path, default=None, help=RUNS_HELP)
    sens.set_defaults(func=cmd_sensitivity)

    export = sub.add_parser("export-lm-eval", help="write eval sets as lm-eval task YAMLs + data")
    export.add_argument("paths", nargs="+", metavar="EVALSET", help="eval-set files or globs")
    export.add_argument("--out", type=Path, required=True, help="the task folder to write")
    export.add_argument(
        "--max-gen-toks", type=int, default=32, help="tokens a generation may take (32)"
    )
    export.set_defaults(func=cmd_export_lm_eval)

    corpus = sub.add_parser(
        "corpus", help="perplexity and KLD over a text file, as llama-perplexity computes them"
    )
    corpus.add_argument("--config", required=True, type=Path, help="a config with [corpus]")
    corpus.add_argument(
        "--out",
        type=Path,
        help="folder for corpus.json and corpus.md (default reports/<name>-corpus)",
    )
    corpus.add_argument("--cache", type=Path, default=None, help=CACHE_HELP)
    corpus.set_defaults(func=cmd_corpus)

    review = sub.add_parser("review", help="hand review verdicts")
    review_sub = review.add_subparsers(dest="review_command", required=True)
    imp = review_sub.add_parser("import", help="merge a review.json exported from report.html")
    imp.add_argument("run_dir", type=Path, help="the run folder the review is of")
    imp.add_argument("review", type=Path, help="the review file the report exported")
    imp.set_defaults(func=cmd_review_import)

    traffic = sub.add_parser("traffic", help="eval sets from production request logs")
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
    timp.set_defaults(func=cmd_traffic_import)
    tsample = traffic_sub.add_parser(
        "sample",
        help="run the baseline over a pool, draw a weighted eval set that oversamples the "
        "items it is least sure of ([traffic] table; docs/traffic.md)",
    )
    tsample.add_argument("--config", type=Path, required=True, help="a config with [traffic]")
    tsample.add_argument("--force", action="store_true", help="replace the files it writes")
    tsample.add_argument("--run-cache", type=Path, default=None, help=RUNS_HELP)
    tsample.set_defaults(func=cmd_traffic_sample)

    canary = sub.add_parser(
        "canary",
        help="watch a live split between the full-precision and the quantized arm; decide",
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
    canary.set_defaults(func=cmd_canary)

    init = sub.add_parser("init", help="write a commented starter config for a model folder")
    init.add_argument("model", help="the baseline: a model folder (or a GGUF file)")
    init.add_argument("--out", type=Path, default=Path("harness.toml"), help="(harness.toml)")
    init.add_argument(
        "--evalset",
        action="append",
        default=[],
        metavar="PATH",
        help="an eval set (again for more); default: the repository's evalsets/real",
    )
    init.add_argument("--force", action="store_true", help="replace --out if it exists")
    init.set_defaults(func=cmd_init)

    report = sub.add_parser("report", help="re-render every artifact of a run folder from disk")
    report.add_argument("run_dir", type=Path, help="a run folder `compare` wrote")
    report.set_defaults(func=cmd_report)
    return parser


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


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that cleanups run as for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _crash(exc: Exception, debug: bool) -> int:
    """Anything but a gate verdict exits 2 with one line; the traceback goes to a log file
    (and to the terminal with --debug), never to CI as if it were a quality regression."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    fd, log = tempfile.mkstemp(prefix="harness-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if debug:
        print(text, file=sys.stderr, end="")
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else exc.filename
        what = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        what = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
    print(f"error: {what} (the traceback is in {log}; --debug prints it)", file=sys.stderr)
    return EXIT_ERROR


def entry() -> None:
    """The `harness` console script (and `python -m harness`): commands that load engines run
    in a worker process, so a native crash there ends in one line, not a killed harness
    (`harness.run.worker`)."""
    words = sys.argv[1:]
    command = [w for w in words if w not in ("--debug", "--verbose")]
    if not worker.supervised(command):
        sys.exit(main(words))
    code, crash = worker.run(words)
    if crash is not None:  # on a line of its own: the worker died mid-way through a bar's line
        print(f"\nerror: {crash}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 pass, 1 a gate verdict fails, 2 anything else (one line), 130 SIGINT,
    143 SIGTERM. `--debug` anywhere on the line prints tracebacks; `--verbose` lets the
    libraries' own warnings and loading bars through (`harness.run.console`)."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words
    with console.session(verbose="--verbose" in words):
        return _main([w for w in words if w not in ("--debug", "--verbose")], debug)


def _main(words: list[str], debug: bool) -> int:
    args = build_parser().parse_args(words)
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        previous = None
    worker.follow_parent()
    try:
        code: int = args.func(args)
    except BaseException as exc:
        console.end_bars()  # the line below starts a line of its own
        return _failed(exc, debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


def _failed(exc: BaseException, debug: bool) -> int:
    """A failure as its exit code and one line (a crash: its traceback in a log)."""
    if isinstance(exc, HarnessError):
        for line in exc.lines():
            print(f"error: {terminal_text(line)}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        print("harness: interrupted (SIGINT); nothing half-written was kept", file=sys.stderr)
        return EXIT_SIGINT
    if isinstance(exc, Terminated):
        print("harness: terminated (SIGTERM); nothing half-written was kept", file=sys.stderr)
        return EXIT_SIGTERM
    if isinstance(exc, Exception):
        return _crash(exc, debug)
    raise exc  # SystemExit, GeneratorExit: not ours to turn into a code


if __name__ == "__main__":
    sys.exit(main())
