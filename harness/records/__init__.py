"""Every frozen record shared by the stages, on the ground floor: no torch, no I/O.

- `items`: what an eval set holds (EvalItem and its parts);
- `outputs`: what a model run produces (Generation, TokenStats, Sample, ModelRun);
- `pairs`: a baseline and a candidate side by side (PairedItem, Outcome, Interval);
- `settings`: what a config asks for (CompareConfig and its tables).
"""

from harness.records.items import (
    DEFAULT_WEIGHT,
    Difficulty,
    EvalItem,
    Message,
    Role,
    Source,
)
from harness.records.outputs import Generation, ModelRun, Sample, TokenStats
from harness.records.pairs import Interval, Option, Outcome, PairedItem, Side
from harness.records.settings import (
    DTYPES,
    METHODS,
    SCHEMES,
    CandidateSpec,
    CompareConfig,
    GateConfig,
    GenerationSettings,
    LmEvalConfig,
    ModelSpec,
    QuantizeSpec,
    ReadyCandidate,
    StatsConfig,
    noise_floor_name,
)

__all__ = [
    "DEFAULT_WEIGHT", "DTYPES", "METHODS", "SCHEMES", "CandidateSpec", "CompareConfig",
    "Difficulty", "EvalItem", "GateConfig", "Generation", "GenerationSettings", "Interval",
    "LmEvalConfig", "Message", "ModelRun", "ModelSpec", "Option", "Outcome", "PairedItem",
    "QuantizeSpec", "ReadyCandidate", "Role", "Sample", "Side", "Source", "StatsConfig",
    "TokenStats", "noise_floor_name",
]  # fmt: skip
