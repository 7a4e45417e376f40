"""`harness compare` (and `ladder`, `sweep`: a compare of a ladder's rungs): the main job.

compare:  items + ready candidates ─► run (generations on disk) ─► analyze ─► run.json once,
          artifacts, the staging folder renamed into place"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.analysis.determinism import determinism
from harness.analysis.gate import check_computable, gate
from harness.analysis.ladder import summarize_ladder
from harness.analysis.metrics import config_json, summarize
from harness.analysis.pairing import pair, pair_samples
from harness.analysis.review import review_status
from harness.analysis.scorers import reference_free
from harness.analysis.sequential import sequence_intervals
from harness.commands import help_of
from harness.commands.common import (
    CACHE_HELP,
    positive_int,
    report_verdicts,
)
from harness.inputs.config import check_pool
from harness.inputs.evalset import load_evalset
from harness.inputs.pool import pool_order
from harness.inputs.sizes import parameter_count, weights_bytes
from harness.records import (
    CompareConfig,
    EvalItem,
    PairedItem,
    ReadyCandidate,
)
from harness.records.errors import HarnessError
from harness.records.results import (
    CandidateInfo,
    CandidateResult,
    Durations,
    EvalsetInfo,
    Partial,
    Results,
    RunHeader,
    RunRecord,
    SequentialPool,
    item_results,
    model_info,
)
from harness.records.review import Reviews
from harness.render.report import render_all
from harness.store.rundir import (
    RunDir,
    check_out,
    dumps,
    locked,
    publish,
    staging_for,
)

logger = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def compare(
    cfg: CompareConfig,
    out: Path,
    cache: Path | None = None,
    run_cache: Path | None = None,
    limit: int | None = None,
) -> Results:
    """Quantize what the config asks for (cached), run every model, analyze, write the run
    folder at `out` (built aside and renamed into place when complete). Models run through
    the run cache (`run_cache`, default the harness home's runs/): a run killed midway
    resumes from its finished batches. A ladder (`[ladder]`) keeps every model's run there
    and reads back what is there: the baseline generates once across rungs and reruns.
    `limit`: only the first items of the pool's seeded order (a smoke run; never a pass)."""
    check_out(out)
    items = load_evalset(cfg.evalsets)
    check_logged(cfg, items)  # before the run stage's imports: a replay's gap in seconds
    # The run stage is the only part that loads torch: imported here, so that `rebuild`
    # and the rest of this module stay light.
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.candidates import ready_models
    from harness.run.preflight import preflight

    at_start = evalset_info(items)  # what was read: checked again before anything is written
    partial = None
    if limit is not None and limit < len(items):
        seed = cfg.sequential.seed if cfg.sequential is not None else cfg.stats.seed
        partial = Partial(limit=limit, items=limit, pool=len(items))
        items = pool_order(items, seed)[:limit]
        logger.warning("%s", partial.sentence())
    if cfg.sequential is not None:
        check_pool(cfg, len(items))
        items = pool_order(items, cfg.sequential.seed)
    check_computable(cfg.gate, items, cfg.generation.distribution, cfg.lm_eval is not None)
    check_embedder(cfg, items)
    preflight(cfg.baseline, cfg.candidates, items, cfg.generation)
    with locked(out):
        check_out(out)  # again, now that no other run can change it
        baseline_fp = checkpoint_fingerprint(cfg.baseline.path)
        ready = ready_models(cfg, baseline_fp, cache)
        created_at = now()
        staging = staging_for(out)
        with removed_on_failure(staging):
            return _run_and_publish(
                cfg,
                out,
                ready,
                items,
                baseline_fp,
                staging,
                run_cache,
                created_at,
                at_start,
                partial,
            )


def _logged(gaps: set[str]) -> Callable[[EvalItem], bool]:
    """Whether an item has its answer in a log whose unanswered ids are `gaps`."""
    return lambda item: item.id not in gaps


def check_logged(cfg: CompareConfig, items: list[EvalItem]) -> None:
    """A replayed candidate's log read as an eval set, before any tokenizer or model loads:
    an item it holds without a logged answer (a request that failed in production) is exit 2
    naming file, line and id. (Items the log holds under other ids are matched by their
    prompt ids once the tokenizer is loaded, by the same `check_answered`.)"""
    from harness.run.backends.base import check_answered  # light: no engine is imported

    for cand in cfg.candidates:
        spec = cand.model
        log = getattr(getattr(spec, "settings", None), "log", None)
        if spec is None or spec.backend != "replay" or not isinstance(log, str):
            continue
        gaps = {item.id for item in load_evalset([log]) if not item.logged_output}
        check_answered(spec.name, items, _logged(gaps))


@contextlib.contextmanager
def removed_on_failure(staging: RunDir) -> Iterator[None]:
    """Interrupted, terminated or failed: the half-built folder goes; the target is untouched."""
    try:
        yield
    except BaseException:
        shutil.rmtree(staging.root, ignore_errors=True)
        raise


def _run_and_publish(
    cfg: CompareConfig,
    out: Path,
    ready: list[ReadyCandidate],
    items: list[EvalItem],
    baseline_fp: str,
    staging: RunDir,
    run_cache: Path | None,
    created_at: str,
    at_start: tuple[EvalsetInfo, ...] = (),
    partial: Partial | None = None,
) -> Results:
    """Run every model into `staging`, analyze, write the artifacts and publish at `out`."""
    from harness.run.execute import execute
    from harness.run.plan import plan_run
    from harness.store.runcache import RunCache

    # Every model runs through the run cache, so that a killed run resumes batch by batch; a
    # ladder keeps the entries (rungs are added and rerun), a plain compare drops those it
    # used once its report is published.
    runs_cache = RunCache(run_cache, keep=cfg.ladder is not None)
    sequential, pool, plan = None, None, None
    if cfg.sequential is not None:
        from harness.analysis.sequential import pools
        from harness.run.sequential import round_ends, run_sequential

        sequential = run_sequential(
            cfg, ready, items, staging, runs_cache, baseline_fp, lambda: unchanged(at_start)
        )
        runs = sequential.runs
        drawn = round_ends(len(items), cfg.sequential)[-1]
        pool = SequentialPool(
            items=drawn, rounds=sequential.rounds, slices=pools(items[:drawn], cfg.gate)
        )
        items = list(sequential.items)
    else:
        plan = plan_run(
            cfg.baseline,
            baseline_fp,
            ready,
            items,
            cfg.generation,
            cfg.lm_eval,
            cfg.agreement,
            cfg.distribution,
        )
        runs = execute(plan, staging, runs_cache)
    hashes = unchanged(at_start)
    header = RunHeader(
        created_at=created_at,
        name=cfg.name,
        config=config_json(cfg),
        evalsets=evalset_info(items, hashes),
        libraries=library_versions(),
        durations=Durations(
            quantize_seconds={c.spec.name: round(c.quantize_seconds, 1) for c in ready},
            quantize_cached={c.spec.name: c.quantize_cached for c in ready},
            generation_seconds={
                k: 0.0 if r.reused else round(r.seconds, 1) for k, r in runs.items()
            },
            tokens_per_second={
                k: r.tokens_per_second for k, r in runs.items() if r.tokens_per_second
            },
            peak_memory_mb={
                k: r.peak_memory_mb for k, r in runs.items() if r.peak_memory_mb is not None
            },
            reused={k: r.reused for k, r in runs.items()},
        ),
        baseline=model_info(
            cfg.baseline,
            baseline_fp,
            weights_bytes(cfg.baseline.path),
            parameter_count(cfg.baseline.path),
        ),
        sequential=pool,
        partial=partial,
    )
    base_stops = runs[cfg.baseline.name].own_stop_ids
    infos = tuple(
        CandidateInfo.of(c, runs[c.spec.name], base_stops, weights_bytes(c.spec.path))
        for c in ready
    )
    if sequential is not None:
        infos = tuple(
            replace(i, items_used=sequential.used[i.name], decided_round=sequential.decided[i.name])
            for i in infos
        )
    summary = plan.summary() if plan is not None else sequential.plan if sequential else None
    run = RunRecord(header=header, candidates=infos, items=tuple(items), plan=summary)
    results, paired = analyze(run, staging, Reviews())
    text = dumps(results.to_json())
    # The run's identity for reviews: results.json as compare wrote it (before any verdict).
    run = replace(run, results_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    staging.write_run(run)
    write_artifacts(staging, run, results, paired)
    publish(staging, out)
    runs_cache.drop_transient()
    return results


def check_embedder(cfg: CompareConfig, items: list[EvalItem]) -> None:
    """Reference-free items are judged by a sentence-embedding model: it must be there before
    any model runs."""
    if any(reference_free(i) for i in items) and not Path(cfg.agreement.model).is_dir():
        raise HarnessError(
            f"{cfg.path}: reference-free items need the sentence-embedding model at "
            f"{cfg.agreement.model} ([agreement] model): run `make real-model`"
        )


def analyze(
    run: RunRecord, folder: RunDir, reviews: Reviews
) -> tuple[Results, dict[str, list[PairedItem]]]:
    """Score, pair, summarize and gate every candidate: the results, and the paired items
    the report renders."""
    settings = run.header.settings
    stats, gate_cfg = settings.stats, settings.gate
    threshold = settings.agreement.threshold
    items = list(run.items)
    baseline = run.header.baseline.name
    base = folder.read_generations(baseline, items)
    lm_base = folder.read_samples(baseline) if settings.lm_eval is not None else None
    paired: dict[str, list[PairedItem]] = {}
    candidates = []
    for cand in run.candidates:
        # a sequential run's candidate ran a prefix of the items (it stopped once decided)
        ran = items[: cand.items_used] if cand.items_used is not None else items
        tokens = folder.read_token_stats(cand.name, ran)
        paired[cand.name] = pair(
            ran,
            base[: len(ran)],
            folder.read_generations(cand.name, ran),
            tokens,
            folder.read_meaning(cand.name),
            threshold,
        )
        if lm_base is not None:
            paired[cand.name] += pair_samples(lm_base, folder.read_samples(cand.name))
        metrics = summarize(paired[cand.name], stats, settings.slices)
        if run.header.sequential is not None:
            metrics = sequence_intervals(
                metrics, paired[cand.name], gate_cfg, run.header.sequential.slices, stats
            )
        review = review_status(paired[cand.name], reviews.verdicts.get(cand.name, {}))
        pools = run.header.sequential.slices if run.header.sequential is not None else None
        partial = run.header.partial
        verdict = gate(
            metrics,
            gate_cfg,
            review,
            paired[cand.name],
            stats.confidence,
            pools,
            stats.seed,
            partial.sentence() if partial is not None else None,
        )
        candidates.append(
            CandidateResult(
                info=cand,
                verdict=verdict.verdict,
                reasons=tuple(verdict.reasons),
                rules=verdict.rules,
                metrics=metrics,
                review=review,
            )
        )
    ladder = None
    if settings.ladder is not None:
        ladder = summarize_ladder(candidates, run.header, settings.ladder)
    results = Results(
        header=run.header,
        determinism=determinism(tuple(candidates)),
        candidates=tuple(candidates),
        items=item_results(paired, reviews.verdicts),
        review_imports=reviews.imports,
        ladder=ladder,
    )
    return results, paired


def write_artifacts(
    folder: RunDir,
    run: RunRecord,
    results: Results,
    paired: dict[str, list[PairedItem]],
    reviews: Reviews | None = None,
) -> None:
    if run.results_sha256 is None:
        raise HarnessError(f"{folder.run_json}: no results_sha256; the run did not complete")
    identity = {"run_id": run.header.run_id, "results_sha256": run.results_sha256}
    folder.write_artifacts(render_all(results, paired, identity), reviews)


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in (
        "harness",
        "torch",
        "transformers",
        "llmcompressor",
        "compressed-tensors",
        "lm-eval",
    ):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


class EvalsetChanged(HarnessError):
    """An eval-set file changed while the run read it: the items run are not the file's."""


def unchanged(at_start: Sequence[EvalsetInfo]) -> dict[str, str]:
    """Every eval-set file still holds what was read at the start: its sha256 per path."""
    from harness.store.sealed import sha256_file

    for info in at_start:
        now = sha256_file(info.path) if Path(info.path).is_file() else "gone"
        if now != info.sha256:
            raise EvalsetChanged(
                f"{info.path}: changed while the run read it (sha256 {info.sha256[:12]}... at "
                f"the start, {now[:12]}... now): the items run are the start's, so nothing is "
                "published; rerun on the file as it is"
            )
    return {info.path: info.sha256 for info in at_start}


def evalset_info(
    items: list[EvalItem], hashes: dict[str, str] | None = None
) -> tuple[EvalsetInfo, ...]:
    """Per eval-set file, its sha256 (from `hashes` when already taken) and the items run."""
    from harness.store.sealed import sha256_file

    known = hashes or {}
    counts: dict[str, int] = {}
    for item in items:
        counts[item.source.path] = counts.get(item.source.path, 0) + 1
    return tuple(
        EvalsetInfo(path=p, sha256=known.get(p) or sha256_file(p), items=n)
        for p, n in counts.items()
    )


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


def run(args: argparse.Namespace) -> int:
    from harness.inputs.config import apply_overrides, load_config

    cfg = apply_overrides(load_config(args.config), args.evalset, args.candidate)
    if args.command in ("ladder", "sweep") and cfg.ladder is None:
        raise HarnessError(f"{args.config}: no [ladder] table: list the rungs as [[ladder.rungs]]")
    out = args.out or Path("reports") / cfg.name
    return report_verdicts(compare(cfg, out, args.cache, args.run_cache, args.limit), out)


def _compare_parser(sub: Any, command: str) -> None:
    """compare, ladder and sweep take the same flags (a ladder is a compare of its rungs)."""
    compare = sub.add_parser(
        command,
        help=help_of(command),
        description=help_of(command),
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
    compare.set_defaults(func=run)


def add_parser(sub: Any) -> None:
    for command in ("compare", "ladder", "sweep"):
        _compare_parser(sub, command)
