"""Every frozen record shared by the stages, on the ground floor: no torch, no I/O.

- `items`: what an eval set holds (EvalItem and its parts);
- `outputs`: what a model run produces (Generation, TokenStats, Sample, ModelRun);
- `pairs`: a baseline and a candidate side by side (PairedItem, Outcome, Interval);
- `metrics`: what a candidate is judged by (CandidateMetrics, DistributionMetrics, SliceRow);
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
from harness.records.metrics import CandidateMetrics, DistributionMetrics, MetricValue, SliceRow
from harness.records.outputs import Generation, ModelRun, Sample, TokenStats
from harness.records.pairs import Interval, Option, Outcome, PairedItem, Side
from harness.records.settings import (
    CALIBRATED,
    DTYPES,
    GGUF_TYPES,
    METHODS,
    SCHEMES,
    AgreementSettings,
    CandidateSpec,
    CompareConfig,
    CorpusSettings,
    DistributionSettings,
    GateSettings,
    GenerationSettings,
    GgufSpec,
    LadderSettings,
    LmEvalSettings,
    ModelSpec,
    NoiseFloorSettings,
    OtherRecipe,
    QuantizeSpec,
    ReadyCandidate,
    SequentialSettings,
    SliceSettings,
    StatsSettings,
    TrafficSettings,
    batched_floor_name,
    noise_floor_name,
)

__all__ = [
    "CALIBRATED",
    "DEFAULT_WEIGHT",
    "DTYPES",
    "GGUF_TYPES",
    "METHODS",
    "SCHEMES",
    "AgreementSettings",
    "CandidateMetrics",
    "CandidateSpec",
    "CompareConfig",
    "CorpusSettings",
    "Difficulty",
    "DistributionMetrics",
    "DistributionSettings",
    "EvalItem",
    "GateSettings",
    "Generation",
    "GenerationSettings",
    "GgufSpec",
    "Interval",
    "LadderSettings",
    "LmEvalSettings",
    "Message",
    "MetricValue",
    "ModelRun",
    "ModelSpec",
    "NoiseFloorSettings",
    "Option",
    "OtherRecipe",
    "Outcome",
    "PairedItem",
    "QuantizeSpec",
    "ReadyCandidate",
    "Role",
    "Sample",
    "SequentialSettings",
    "Side",
    "SliceRow",
    "SliceSettings",
    "Source",
    "StatsSettings",
    "TokenStats",
    "TrafficSettings",
    "batched_floor_name",
    "noise_floor_name",
]
