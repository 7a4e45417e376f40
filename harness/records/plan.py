"""What a run will do, decided once before anything runs (`harness.run.plan.plan_run`) and
then executed as it says (`harness.run.execute.execute`): the items and each one's token
limit, the generation settings as they will run, how the baseline's log-probs are kept, and
per model its cache entry and whether its log-probs are taken. run.json keeps it
(`RunPlan.summary`), so a reader sees what was decided, not only what was asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.records.items import EvalItem
from harness.records.settings import (
    AgreementSettings,
    DistributionSettings,
    GenerationSettings,
    LmEvalSettings,
    ModelSpec,
)

Role = Literal["baseline", "candidate", "noise-floor"]


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """One model's part of a run."""

    spec: ModelSpec
    fingerprint: str
    role: Role
    # Its run-cache entry (resumable batch by batch, read back when it is there); None: it
    # runs into the run folder (a server or a hub id: answers that may change behind a name).
    cache_key: str | None
    keep: bool  # the cache entry outlives the run (a noise floor is measured afresh)
    # Its log-probs are taken: the baseline's kept as the reference, a candidate's compared
    # with them (an engine that gives none is compared on its outputs only).
    probe: bool

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class RunPlan:
    items: tuple[EvalItem, ...]
    limits: tuple[int, ...]  # each item's token limit: its own max_new_tokens or the run's
    generation: GenerationSettings  # as run: distribution off where the baseline cannot
    distribution: DistributionSettings
    lockstep: bool  # the baseline scores beside each candidate; nothing kept on disk
    lm_eval: LmEvalSettings | None
    agreement: AgreementSettings
    baseline: ModelPlan
    candidates: tuple[ModelPlan, ...]
    notes: tuple[str, ...] = ()  # decisions a reader should know (the metrics left out...)

    @property
    def models(self) -> tuple[ModelPlan, ...]:
        return (self.baseline, *self.candidates)

    @property
    def positions(self) -> int:
        """How many log-prob rows the baseline can write at most: each item's token limit
        plus the stop id that may end it."""
        return sum(n + 1 for n in self.limits)

    def summary(self) -> dict[str, Any]:
        """What run.json records of the plan."""
        return {
            "distribution": self.generation.distribution,
            "store": None if not self.generation.distribution else self.distribution.store,
            "lockstep": self.lockstep,
            "positions": self.positions,
            "models": [
                {
                    "name": m.name,
                    "role": m.role,
                    "cache_key": m.cache_key,
                    "keep": m.keep,
                    "probe": m.probe,
                }
                for m in self.models
            ],
            "notes": list(self.notes),
        }
