"""A run's plan, decided once before anything runs: which models run in what role, the
generation settings as they will run (the distribution metrics left out where the baseline's
engine gives no full-vocabulary log-probs), whether the baseline scores beside each
candidate (lockstep: checked to fit memory here, before anything loads), each item's token
limit, each model's run-cache entry (only checkpoints fingerprinted by content and run in
this process are cached) and whether its log-probs are taken. `harness.run.execute` runs it
as it says; sequential rounds, mining and sensitivity ask it for their keys."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from harness.records import (
    AgreementSettings,
    DistributionSettings,
    EvalItem,
    GenerationSettings,
    LmEvalSettings,
    ModelSpec,
    ReadyCandidate,
)
from harness.records.plan import ModelPlan, Role, RunPlan
from harness.run.backends import engine_class
from harness.store.runcache import baseline_key, cacheable, candidate_key

logger = logging.getLogger(__name__)


def token_limits(items: Sequence[EvalItem], generation: GenerationSettings) -> tuple[int, ...]:
    """Each item's token limit: its own `max_new_tokens`, else the run's."""
    return tuple(item.token_limit(generation.max_new_tokens) for item in items)


def cached(spec: ModelSpec, fingerprint: str) -> bool:
    """Whether a model's run can be kept by content: a checkpoint fingerprinted by its
    files, run in this process."""
    return cacheable(fingerprint, engine_class(spec.backend).in_process)


def effective_generation(baseline: ModelSpec, generation: GenerationSettings) -> GenerationSettings:
    """The generation settings as they will run: a server's top-k cannot be the reference
    of a KLD, so with a baseline whose engine gives no full-vocabulary log-probs the
    distribution metrics are left out rather than reported as something else."""
    if (
        generation.distribution
        and not engine_class(baseline.backend).capabilities.full_vocab_logprobs
    ):
        return replace(generation, distribution=False)
    return generation


def baseline_plan(
    spec: ModelSpec,
    fingerprint: str,
    items: Sequence[EvalItem],
    generation: GenerationSettings,
    lm_eval: LmEvalSettings | None,
    distribution: DistributionSettings,
    use_cache: bool = True,
    role: str = "baseline",
) -> ModelPlan:
    """The baseline's part (`generation` as it will run). `role` "signals": the baseline's
    mining run over a traffic pool, cached apart (`harness.run.mining`)."""
    key = None
    if use_cache and cached(spec, fingerprint):
        key = baseline_key(spec, fingerprint, items, generation, lm_eval, role, distribution)
    # the baseline's entry outlives the run: adding a candidate, or running the same items
    # again, reads it back instead of generating the baseline again
    return ModelPlan(spec, fingerprint, "baseline", key, keep=True, probe=generation.distribution)


def plan_run(
    baseline: ModelSpec,
    baseline_fp: str,
    candidates: Sequence[ReadyCandidate],
    items: Sequence[EvalItem],
    generation: GenerationSettings,
    lm_eval: LmEvalSettings | None = None,
    agreement: AgreementSettings | None = None,
    distribution: DistributionSettings | None = None,
    use_cache: bool = True,
) -> RunPlan:
    """Every decision of a run of `items` with the baseline and `candidates` (the noise
    floors among them, `harness.run.candidates.ready_models`)."""
    distribution = distribution or DistributionSettings()
    notes: list[str] = []
    run_as = effective_generation(baseline, generation)
    if run_as.distribution != generation.distribution:
        note = (
            f"{baseline.name}: the {baseline.backend} engine returns no full-vocabulary "
            "log-probs: the distribution metrics are left out of this run"
        )
        logger.warning("%s", note)
        notes.append(note)
    lockstep = run_as.distribution and distribution.mode == "lockstep"
    if lockstep:  # both models' weights and a batch's rows, against the memory there is
        from harness.run.lockstep import available_bytes, check_fits, need

        specs = [c.spec for c in candidates]
        limit = run_as.max_new_tokens
        check_fits(need(baseline, specs, items, run_as.batch_size, limit), available_bytes())
    base = baseline_plan(baseline, baseline_fp, items, run_as, lm_eval, distribution, use_cache)
    models = []
    for cand in candidates:
        role: Role = "noise-floor" if cand.noise_floor else "candidate"
        key = None
        if base.cache_key is not None and cached(cand.spec, cand.fingerprint):
            key = candidate_key(cand.spec, cand.fingerprint, base.cache_key, role)
        caps = engine_class(cand.spec.backend).capabilities
        probe = run_as.distribution and bool(caps.full_vocab_logprobs or caps.top_k)
        # Kept after the run, so that a config with one candidate more runs that one alone;
        # a noise floor is measured afresh each time (its point is a second run).
        keep = not cand.noise_floor
        models.append(ModelPlan(cand.spec, cand.fingerprint, role, key, keep=keep, probe=probe))
    return RunPlan(
        items=tuple(items),
        limits=token_limits(items, run_as),
        generation=run_as,
        distribution=distribution,
        lockstep=lockstep,
        lm_eval=lm_eval,
        agreement=agreement or AgreementSettings(),
        baseline=base,
        candidates=tuple(models),
        notes=tuple(notes),
    )
