"""The library API: `compare(config, out) -> Results`, `rebuild(run_dir) -> Results` and
`import_review(run_dir, review) -> Results`. The command line is a thin layer over these.

compare:  items + ready candidates ─► run (generations on disk) ─► analyze ─► run.json once,
          artifacts, the staging folder renamed into place
rebuild:  run.json + generations ─► analyze ─► artifacts (no model, no torch)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.analysis.candidate_metrics import summarize
from harness.analysis.gate import check_computable, gate
from harness.analysis.ladder import summarize_ladder
from harness.analysis.pairing import pair, pair_samples, sample_item
from harness.analysis.results import (
    CandidateInfo,
    CandidateResult,
    Durations,
    EvalsetInfo,
    Partial,
    Results,
    RunHeader,
    RunRecord,
    SequentialPool,
    config_json,
    determinism,
    item_results,
    model_info,
)
from harness.analysis.review import ReviewError, Reviews, check_review, merge, review_status
from harness.analysis.scorers import reference_free
from harness.analysis.sequential import sequence_intervals
from harness.inputs.config import check_pool
from harness.inputs.evalset import load_evalset
from harness.inputs.pool import pool_order
from harness.inputs.review import read_review
from harness.inputs.sizes import parameter_count, weights_bytes
from harness.records import (
    CompareConfig,
    EvalItem,
    ModelSpec,
    Outcome,
    PairedItem,
    ReadyCandidate,
)
from harness.records.errors import HarnessError
from harness.render.report import render_all
from harness.store.outputs import owned_folder
from harness.store.rundir import (
    RunDir,
    RunFolderError,
    check_out,
    dumps,
    locked,
    publish,
    staging_for,
    write_atomic,
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
    from harness.run.runner import (
        batched_floor_candidate,
        noise_floor_candidate,
        preflight,
        ready_candidate,
    )

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
        ready = [ready_candidate(c, cfg.baseline, baseline_fp, cache) for c in cfg.candidates]
        if cfg.noise_floor:
            ready.append(noise_floor_candidate(cfg.baseline, baseline_fp))
        if cfg.noise_floor_batched:
            n = cfg.noise_floor_batched
            ready.append(batched_floor_candidate(cfg.baseline, baseline_fp, n))
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
    from harness.run.runner import run_all
    from harness.store.runcache import RunCache

    # Every model runs through the run cache, so that a killed run resumes batch by batch; a
    # ladder keeps the entries (rungs are added and rerun), a plain compare drops those it
    # used once its report is published.
    runs_cache = RunCache(run_cache, keep=cfg.ladder is not None)
    sequential, pool = None, None
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
        runs = run_all(
            cfg.baseline,
            ready,
            items,
            cfg.generation,
            staging,
            cfg.lm_eval,
            cfg.agreement,
            runs_cache,
            baseline_fp,
            distribution=cfg.distribution,
        )
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
    run = RunRecord(header=header, candidates=infos, items=tuple(items))
    results, paired = analyze(run, staging, Reviews())
    text = dumps(results.to_json())
    # The run's identity for reviews: results.json as compare wrote it (before any verdict).
    run = replace(run, results_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    staging.write_run(run)
    write_artifacts(staging, run, results, paired)
    publish(staging, out)
    runs_cache.drop_transient()
    return results


def corpus_models(cfg: CompareConfig, cache: Path | None = None) -> list[ModelSpec]:
    """The baseline and every candidate (quantized when missing, cached)."""
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.runner import ready_candidate

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


def check_embedder(cfg: CompareConfig, items: list[EvalItem]) -> None:
    """Reference-free items are judged by a sentence-embedding model: it must be there before
    any model runs."""
    if any(reference_free(i) for i in items) and not Path(cfg.agreement.model).is_dir():
        raise HarnessError(
            f"{cfg.path}: reference-free items need the sentence-embedding model at "
            f"{cfg.agreement.model} ([agreement] model): run `make real-model`"
        )


def rebuild(run_dir: Path) -> Results:
    """Re-derive every artifact of a run folder from what is on disk (no model loaded)."""
    with _writing(run_dir, "which is writing the same run folder"):
        return _rebuild(run_dir)


@contextlib.contextmanager
def _writing(run_dir: Path, what: str) -> Iterator[None]:
    """The run folder's lock, waited for: one writer at a time (a compare publishing it, a
    report rebuild, a review import), each reading what the one before wrote."""
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    with locked(run_dir, wait=True, what=what):
        yield


def _rebuild(run_dir: Path, reviews: Reviews | None = None) -> Results:
    """`rebuild`, the lock held. With `reviews` (new verdicts merged), they are written with
    the artifacts, all or none."""
    folder = RunDir(run_dir)
    run = folder.read_run()
    results, paired = analyze(run, folder, folder.read_reviews() if reviews is None else reviews)
    write_artifacts(folder, run, results, paired, reviews)
    return results


def import_review(run_dir: Path, review_path: Path) -> tuple[int, Results]:
    """Merge a reviewer's verdicts into the run, then rebuild every artifact (and the gate).
    Returns how many verdicts the review brought, and the new results. Imports into one
    folder take its lock in turn: each merges into what the one before wrote."""
    review = read_review(review_path)
    with _writing(run_dir, "which is writing the same run folder (a review import?)"):
        folder = RunDir(run_dir)
        run = folder.read_run()
        # The report's items: the eval set's and, with lm-eval tasks, their samples.
        ids = {item.id for item in run.items}
        if run.header.settings.lm_eval is not None:
            ids |= {sample_item(s).id for s in folder.read_samples(run.header.baseline.name)}
        # What the review queue showed: per candidate, the items whose outcome is not
        # identical (read from results.json: outcomes do not depend on reviews, so nothing is
        # re-paired).
        flagged: dict[str, set[str]] = {c.name: set() for c in run.candidates}
        for it in folder.read_results().items:
            for name, side in it.candidates.items():
                if side.outcome != Outcome.IDENTICAL.value:
                    flagged[name].add(it.id)
        try:
            verdicts = check_review(review, run.header.run_id, run.results_sha256, ids, flagged)
        except ReviewError as exc:
            raise ReviewError(f"{review_path}: {exc}") from None
        merged = merge(folder.read_reviews(), review, verdicts, now())
        return len(verdicts), _rebuild(run_dir, merged)


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


def sample_traffic(
    cfg: CompareConfig, force: bool = False, run_cache: Path | None = None
) -> dict[str, Any]:
    """`harness traffic sample`: mine the `[traffic]` pool with the baseline, draw the weighted
    eval set (and a calibration set from the rest), write them and the signals beside; returns
    the summary written as `<out>.sample.json`."""
    from harness.analysis.sampling import HARD, check_pool, draw, hard_items, weight
    from harness.run.mining import mine, signal_rows
    from harness.store.outputs import check_file, check_not_input
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
