"""What a precision ladder comes to: each rung's size and damage, the lightest rung that
passes, cliffs, calibration pairs and the release decision. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from harness.records.pairs import Interval
from harness.records.settings import GateVerdict


@dataclass(frozen=True, slots=True, kw_only=True)
class RungSlice:
    """A rung's weighted-accuracy drop on one slice ("all", "difficulty=hard", "tag=x")."""

    slice: str
    drop: Interval | None  # None: nothing scorable in the slice


@dataclass(frozen=True, slots=True, kw_only=True)
class Rung:
    name: str
    recipe: str  # the recipe in words ("W4A16 g128 GPTQ", "GGUF Q4_K_M (llama.cpp)")
    size_bytes: int | None  # weights on disk
    bits_per_weight: float | None  # size on disk x 8 / the baseline's parameter count
    smaller: float | None  # the baseline's size on disk over this rung's
    speedup: float | None  # tokens per second over the baseline's, on this machine
    verdict: GateVerdict  # the gate's, as for any candidate
    drop: Interval | None  # weighted accuracy, baseline minus rung, with its interval
    mean_kld: float | None
    pareto: bool  # no other rung is both smaller (or equal) and less damaged
    slices: tuple[RungSlice, ...] = ()
    kld_top_k: int | None = None  # mean_kld is a lower bound from top-k log-probs


@dataclass(frozen=True, slots=True, kw_only=True)
class Cliff:
    """A step down the ladder (heavier -> lighter, by size) that more than doubled the
    weighted-accuracy drop, and by more than its interval can explain."""

    slice: str
    heavier: str
    lighter: str
    before: float  # drop of the heavier rung (a fraction)
    after: float  # drop of the lighter rung
    after_low: float  # the lower end of the lighter rung's interval


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationPair:
    """Rungs made by the same recipe with different calibration sets."""

    recipe: str
    rungs: tuple[str, ...]
    calibrations: tuple[str, ...]


EXPLORATORY = (
    "exploratory: searched over every slice and step with no correction for how many were "
    "looked at; a lead to read by hand, not a verdict"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ladder:
    rungs: tuple[Rung, ...]  # heaviest first (by size on disk, then as listed)
    # the lightest rung the fixed sequence reaches: rungs tested heaviest first, each only
    # once every heavier one passed (the family-wise error stays at one test's)
    lightest_passing: str | None
    answer: str  # the first-screen sentence
    cliffs: tuple[Cliff, ...]
    pairs: tuple[CalibrationPair, ...]
    decision: GateVerdict  # the release decision, as the exit code reads it
    decision_reason: str
    breaks_first: tuple[tuple[str, str | None], ...] = ()  # slice -> first rung that breaks it
    target: str | None = None
    max_size_mb: float | None = None
    # what cliffs and breaks_first are: said in results.json as in every other artifact
    exploratory: str = EXPLORATORY
