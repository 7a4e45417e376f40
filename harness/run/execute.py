"""A run's plan executed (`harness.run.plan`): the baseline, then each candidate on the
baseline's token ids, one model in memory at a time, each model's outputs written into the
run folder as soon as it is done, then meaning judged. A model with a run-cache entry is read
back when the entry is there, and otherwise run into the entry (journalled batch by batch, so
a killed run resumes) and kept; every decision was made by the plan, none here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.records import EvalItem, LmEvalSettings, ModelRun, TokenStats
from harness.records.plan import ModelPlan, RunPlan
from harness.run.backends import open_backend
from harness.run.feeding import ModelInputs
from harness.run.generation import run_model
from harness.run.lockstep import LockstepRows
from harness.run.meaning import judge_meaning
from harness.run.probes import BaselineProbe, CandidateProbe, LogprobStore
from harness.store.logprobs import GB, StorePlan
from harness.store.runcache import MODEL, ModelSession, RunCache
from harness.store.rundir import RunDir

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """What the candidates need of the baseline's run: what it was fed (every candidate is
    fed the same) and its probe (the reference log-probs), if taken."""

    run: ModelRun
    inputs: ModelInputs
    probe: BaselineProbe | None


def execute(plan: RunPlan, folder: RunDir, cache: RunCache | None) -> dict[str, ModelRun]:
    """Every model of the plan run (or read back) into `folder`; with the distribution on,
    each candidate's per-token distances to the baseline and every model's reference NLLs
    too. Returns every model's run (generations, seconds, speed), by name."""
    if cache is None and any(m.cache_key is not None for m in plan.models):
        raise ValueError("a plan with run-cache entries needs the run cache")
    base = _baseline(plan, folder, cache)
    runs = {plan.baseline.name: base.run}
    for model in plan.candidates:
        runs[model.name] = _candidate(plan, model, base, folder, cache)
    for name, run in runs.items():
        if run.reused:
            logger.info("%s: reused from the run cache (no generation)", name)
    folder.remove_scratch()
    judge_meaning(plan.items, runs, plan.baseline.name, plan.agreement, folder)
    return runs


def _store(plan: RunPlan, folder: RunDir) -> LogprobStore | LockstepRows:
    """Where the baseline's log-probs go: nowhere in lockstep (the baseline scores beside
    each candidate), else a store in `folder` holding every row the plan's limits allow."""
    if plan.lockstep:
        return LockstepRows(plan.generation.batch_size)
    d = plan.distribution
    rows = StorePlan(
        store=d.store, top_k=d.top_k, max_bytes=d.max_store_gb * GB, positions=plan.positions
    )
    return LogprobStore(folder.logprob_stem, rows)


def _baseline(plan: RunPlan, folder: RunDir, cache: RunCache | None) -> BaselineRun:
    model, items, settings = plan.baseline, plan.items, plan.generation
    if cache is None or model.cache_key is None:  # a server or a hub id: no resuming
        probe = (
            BaselineProbe(items, _store(plan, folder), settings.batch_size) if model.probe else None
        )
        run, fed = run_model(model.spec, items, settings, probe=probe, lm_eval=plan.lm_eval,
                             limits=plan.limits)  # fmt: skip
        write_model(folder, run, items, None, probe.reference_nll if probe else None, plan.lm_eval)
        return BaselineRun(run, fed, probe)
    with cache.session(model.cache_key, model.name, keep=model.keep) as session:
        if session.found is None:
            _make_baseline(plan, session)
        assert session.found is not None
        entry, meta = session.found
    run = replace(_cached_run(model.name, entry, meta, items, plan.lm_eval), reused=session.reused)
    pieces = (
        {int(k): bytes.fromhex(v) for k, v in meta["pieces"].items()}
        if meta.get("pieces") is not None
        else None
    )
    fed = ModelInputs(meta["prompt_ids"], tuple(meta["stop_ids"]), pieces)
    probe = None
    if model.probe:
        store = (
            LockstepRows(settings.batch_size)
            if plan.lockstep
            else LogprobStore.open(entry.logprob_stem)
        )
        conts = meta["continuations"]
        probe = BaselineProbe.restored(items, store, settings.batch_size, fed.stop_ids, conts)
    folder.adopt(entry, MODEL, model.name)
    return BaselineRun(run, fed, probe)


def _make_baseline(plan: RunPlan, session: ModelSession) -> None:
    model, items, settings, tmp = plan.baseline, plan.items, plan.generation, session.work
    probe = BaselineProbe(items, _store(plan, tmp), settings.batch_size) if model.probe else None
    run, fed = run_model(
        model.spec, items, settings, probe=probe, lm_eval=plan.lm_eval, session=session,
        limits=plan.limits,
    )  # fmt: skip
    nll = probe.reference_nll if probe else None
    write_model(tmp, replace(run, name=MODEL), items, None, nll, plan.lm_eval)
    pieces = None if fed.pieces is None else {k: v.hex() for k, v in fed.pieces.items()}
    meta = _meta(run) | {
        "prompt_ids": fed.ids,
        "stop_ids": list(fed.stop_ids),
        "pieces": pieces,
    }
    if probe is not None:
        meta["continuations"] = [list(probe.conts[i]) for i in range(len(items))]
    session.commit(meta)


def _candidate(
    plan: RunPlan, model: ModelPlan, base: BaselineRun, folder: RunDir, cache: RunCache | None
) -> ModelRun:
    items, lm_eval = plan.items, plan.lm_eval
    if cache is None or model.cache_key is None:
        run, stats, nll = _run_candidate(plan, model, base)
        write_model(folder, run, items, stats, nll, lm_eval)
        return run
    with cache.session(model.cache_key, model.name, keep=model.keep) as session:
        if session.found is None:
            run, stats, nll = _run_candidate(plan, model, base, session)
            write_model(session.work, replace(run, name=MODEL), items, stats, nll, lm_eval)
            entry, _ = session.commit(_meta(run))
        else:
            entry, meta = session.found
            run = _cached_run(model.name, entry, meta, items, lm_eval)
    folder.adopt(entry, MODEL, model.name)
    return run


def _run_candidate(
    plan: RunPlan, model: ModelPlan, base: BaselineRun, session: ModelSession | None = None
) -> tuple[ModelRun, list[TokenStats] | None, dict[str, float] | None]:
    probe = None
    if model.probe and base.probe is not None:
        probe = CandidateProbe(plan.items, base.probe, plan.generation.batch_size)
    with _beside(plan, probe, base):
        run, _ = run_model(
            model.spec, plan.items, plan.generation, base.inputs, probe, plan.lm_eval, session,
            limits=plan.limits,
        )  # fmt: skip
    return run, probe.ordered() if probe else None, probe.reference_nll if probe else None


@contextlib.contextmanager
def _beside(plan: RunPlan, probe: CandidateProbe | None, base: BaselineRun) -> Iterator[None]:
    """In lockstep, the baseline loaded while the candidate runs, scoring its own rows."""
    store = None if probe is None else probe.base.store
    if probe is None or not isinstance(store, LockstepRows):
        yield
        return
    with open_backend(plan.baseline.spec) as backend:
        store.attach(backend, base.inputs.ids, probe.base.conts)
        try:
            yield
        finally:
            store.detach()


def write_model(
    folder: RunDir,
    run: ModelRun,
    items: Sequence[EvalItem],
    stats: Sequence[TokenStats] | None,
    reference_nll: dict[str, float] | None,
    lm_eval: LmEvalSettings | None,
) -> None:
    """One model's outputs into a run folder (the run's, or a run-cache entry)."""
    folder.write_generations(run)
    if lm_eval is not None:
        folder.write_samples(run.name, run.samples)
    if stats is not None:
        folder.write_token_stats(run.name, items, stats)
    if reference_nll is not None:
        folder.write_reference_nll(run.name, reference_nll)


def _meta(run: ModelRun) -> dict[str, Any]:
    return {
        "seconds": round(run.seconds, 3),
        "tokens_per_second": run.tokens_per_second,
        "peak_memory_mb": run.peak_memory_mb,
        "split_differently": run.split_differently,
        "own_stop_ids": list(run.own_stop_ids),
    }


def _cached_run(
    name: str,
    entry: RunDir,
    meta: dict[str, Any],
    items: Sequence[EvalItem],
    lm_eval: LmEvalSettings | None,
) -> ModelRun:
    """A model's run read back from a run-cache entry, under the run's name for it (its
    per-token distances and reference NLLs stay in the entry's files, adopted by the run
    folder: the analysis reads them there)."""
    gens = tuple(entry.read_generations(MODEL, items))
    samples = tuple(entry.read_samples(MODEL)) if lm_eval is not None else ()
    return ModelRun(
        name=name,
        generations=gens,
        seconds=float(meta["seconds"]),
        samples=samples,
        tokens_per_second=meta["tokens_per_second"],
        peak_memory_mb=meta["peak_memory_mb"],
        reused=True,
        split_differently=int(meta.get("split_differently", 0)),
        own_stop_ids=tuple(meta.get("own_stop_ids", ())),
    )
