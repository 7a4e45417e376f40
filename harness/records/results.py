"""The typed, versioned run records: `RunRecord` (run.json: what was run) and `Results`
(results.json: what came of it), with `CandidateResult` and `ItemResult`. Renderers take
these objects; `to_json`/`from_json` are the only way either file is written or read.

`SCHEMA_VERSION` changes with what either file holds; docs/CHANGELOG.md says what each
version holds. A folder of another version is refused in one line, never misread.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.records import (
    AgreementSettings,
    EvalItem,
    GateSettings,
    Interval,
    LadderSettings,
    LmEvalSettings,
    ModelRun,
    ModelSpec,
    Option,
    PairedItem,
    ReadyCandidate,
    SliceSettings,
    Source,
    StatsSettings,
)
from harness.records.codec import CodecError, from_json, to_json
from harness.records.errors import HarnessError, RecordError
from harness.records.gate import RuleResult
from harness.records.ladder import Ladder
from harness.records.metrics import CandidateMetrics, DistributionMetrics, MetricValue, SliceRow
from harness.records.pool import Pool
from harness.records.review import ReviewStatus, Verdict
from harness.records.settings import GateVerdict, Recipe
from harness.records.versions import SCHEMA_VERSION


def check_schema(data: Any, where: str) -> None:
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {found} is not {SCHEMA_VERSION}")


# --- run.json ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalsetInfo:
    path: str
    sha256: str
    items: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Partial:
    """A run on part of its eval set (`compare --limit`): the first `items` of the pool's
    seeded order, of `pool`. It never passes a gate."""

    limit: int
    items: int
    pool: int

    def sentence(self) -> str:
        return (
            f"A partial run (--limit {self.limit}: {self.items} of {self.pool} items, the first "
            "of the pool's seeded order) never passes the gate: run without --limit for a "
            "verdict."
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    path: str
    fingerprint: str
    dtype: str
    device: str
    backend: str = "hf"
    size_bytes: int | None = None  # weight files on disk
    parameters: int | None = None  # from the checkpoint's tensor shapes


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateInfo:
    name: str
    path: str
    fingerprint: str
    gated: bool
    quantize: Recipe | None
    calibration_sha256: str | None
    noise_floor: bool
    backend: str = "hf"  # the engine the candidate ran on
    batched: int | None = None  # a noise floor run in batches of this many sequences
    size_bytes: int | None = None  # weight files on disk
    # Prompts the candidate's own tokenizer splits into other ids than the baseline's (it is
    # fed the baseline's ids; a server tokenizing text itself would see the others).
    split_differently: int = 0
    # The stop ids the candidate itself names, where they differ from the baseline's (every
    # model stops on the baseline's): a re-uploaded checkpoint with another eos, say.
    own_stop_ids: tuple[int, ...] | None = None
    # A sequential run: the items this candidate ran (a prefix of the run's items, in the
    # pool's order) and the round each gated rule was decided in (a rule left out: never).
    items_used: int | None = None
    decided_round: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        c: ReadyCandidate,
        run: ModelRun | None = None,
        baseline_stop_ids: tuple[int, ...] = (),
        size_bytes: int | None = None,
    ) -> CandidateInfo:
        """`size_bytes`: its weight files' bytes, read by the caller (`inputs.sizes`)."""
        own = None
        if run is not None and run.own_stop_ids and set(run.own_stop_ids) != set(baseline_stop_ids):
            own = run.own_stop_ids
        return cls(
            name=c.spec.name,
            path=c.spec.path,
            fingerprint=c.fingerprint,
            gated=c.gated,
            quantize=c.quantize,
            calibration_sha256=c.calibration_sha256,
            noise_floor=c.noise_floor,
            batched=c.batched,
            backend=c.spec.backend,
            size_bytes=size_bytes,
            split_differently=run.split_differently if run else 0,
            own_stop_ids=own,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Durations:
    quantize_seconds: dict[str, float] = field(default_factory=dict)
    quantize_cached: dict[str, bool] = field(default_factory=dict)
    generation_seconds: dict[str, float] = field(default_factory=dict)
    # Speed next to quality: generated tokens per second of greedy generation, and the
    # engine's peak resident memory in MiB (in-process engines only: a server's is its own).
    tokens_per_second: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    # Models read back from the run cache (a ladder): their generation_seconds are 0 here.
    reused: dict[str, bool] = field(default_factory=dict)


def item_to_json(item: EvalItem) -> dict[str, Any]:
    """An item in the eval-set contract's own form (read back by `evalset.parse_item`)."""
    row: dict[str, Any] = {"id": item.id}
    if item.prompt is not None:
        row["prompt"] = item.prompt
    else:
        row["messages"] = messages_json(item)
    if item.reference:
        row["reference"] = list(item.reference)
    row |= {
        "scorer": str(item.scorer),
        "difficulty": item.difficulty.value,
        "weight": item.weight,
        "tags": list(item.tags),
    }
    if item.max_new_tokens is not None:
        row["max_new_tokens"] = item.max_new_tokens
    if item.extract is not None:
        row["extract"] = item.extract
    if item.tools:
        row["tools"] = item.tool_schemas()
    if item.response_format is not None:
        row["response_format"] = item.response_format_json()
    return row


def messages_json(item: EvalItem) -> list[dict[str, Any]] | None:
    return item.conversation()


def _fields(kind: Any, data: Any, names: list[str]) -> dict[str, Any]:
    """Fields `names` of the record `kind`, read from the JSON object `data` by their hints."""
    hints = typing.get_type_hints(kind)
    return {n: from_json(hints[n], data.get(n), f"$.{n}") for n in names}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """What the analysis and the report read of a run's resolved config, typed: decoded from
    run.json's `config` in this one place (a rerun of the analysis needs no config file)."""

    stats: StatsSettings
    gate: GateSettings
    agreement: AgreementSettings
    lm_eval: LmEvalSettings | None
    ladder: LadderSettings | None
    slices: SliceSettings

    @classmethod
    def of(cls, config: dict[str, Any]) -> RunSettings:
        try:
            table = dict(config["gate"])
            bound = table.pop("bound")
            return cls(
                stats=from_json(StatsSettings, config["stats"], "$.config.stats"),
                gate=GateSettings(
                    limits={k: v for k, v in table.items() if v is not None}, bound=bound
                ),
                agreement=from_json(AgreementSettings, config["agreement"], "$.config.agreement"),
                lm_eval=from_json(LmEvalSettings | None, config["lm_eval"], "$.config.lm_eval"),
                ladder=from_json(LadderSettings | None, config.get("ladder"), "$.config.ladder"),
                # a run folder from before length slices reads with the default buckets
                slices=from_json(SliceSettings, config.get("slices", {}), "$.config.slices"),
            )
        except (KeyError, TypeError, RecordError) as exc:
            raise CodecError(f"$.config: not a resolved config ({exc})") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialPool:
    """What a sequential run drew from: the pool's size (after max_items), the rounds run,
    and per gated rule its slice of the pool (size, total and largest weight)."""

    items: int
    rounds: int
    slices: dict[str, Pool]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHeader:
    """What run.json and results.json both open with: which run, of what, on what."""

    created_at: str
    name: str
    config: dict[str, Any]  # the config as resolved (`config_json`)
    evalsets: tuple[EvalsetInfo, ...]
    libraries: dict[str, str | None]
    durations: Durations
    baseline: ModelInfo
    sequential: SequentialPool | None = None  # a run with [sequential]
    partial: Partial | None = None  # a run on part of its eval set (--limit)

    @property
    def run_id(self) -> str:
        return f"{self.name}@{self.created_at}"

    @property
    def settings(self) -> RunSettings:
        return RunSettings.of(self.config)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        return data | {n: to_json(getattr(self, n)) for n in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Any) -> RunHeader:
        return cls(**_fields(cls, data, list(cls.__dataclass_fields__)))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """run.json: everything the analysis needs besides what the models produced."""

    header: RunHeader
    candidates: tuple[CandidateInfo, ...]
    items: tuple[EvalItem, ...]
    # sha256 of results.json as `compare` wrote it: the run's identity for reviews.
    results_sha256: str | None = None
    # What the run's plan decided (`harness.records.plan.RunPlan.summary`; a sequential run:
    # its first round's): kept for the reader, never read back by the analysis.
    plan: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.header.to_json() | {
            "candidates": to_json(self.candidates),
            "items": [{"source": str(i.source), "item": item_to_json(i)} for i in self.items],
            "results_sha256": self.results_sha256,
            "plan": self.plan,
        }

    @classmethod
    def from_json(cls, data: Any, parse_item: Callable[[Any, Source], EvalItem]) -> RunRecord:
        """`parse_item`: the eval-set validator (`harness.inputs.evalset.parse_item`), so an
        item read back from run.json passes the checks an eval set's own line does."""
        check_schema(data, "run.json")
        items = []
        rows = from_json(list[dict[str, Any]], data.get("items"), "$.items")
        for n, row in enumerate(rows):
            path, _, line = str(row.get("source")).rpartition(":")
            try:
                if not line.isdigit():
                    raise RecordError(f"bad source {row.get('source')!r}")
                items.append(parse_item(row.get("item"), Source(path, int(line))))
            except HarnessError as exc:
                raise CodecError(f"$.items[{n}]: {exc}") from None
        return cls(
            header=RunHeader.from_json(data),
            candidates=from_json(tuple[CandidateInfo, ...], data.get("candidates"), "$.candidates"),
            items=tuple(items),
            results_sha256=from_json(str | None, data.get("results_sha256"), "$.results_sha256"),
            plan=from_json(dict[str, Any] | None, data.get("plan"), "$.plan"),
        )


def model_info(
    spec: ModelSpec, fingerprint: str, size_bytes: int | None, parameters: int | None
) -> ModelInfo:
    """The baseline as run.json names it; its sizes read by the caller (`inputs.sizes`)."""
    return ModelInfo(
        name=spec.name,
        path=spec.path,
        fingerprint=fingerprint,
        dtype=spec.dtype,
        device=spec.device,
        backend=spec.backend,
        size_bytes=size_bytes,
        parameters=parameters,
    )


# --- results.json ------------------------------------------------------------------------


def metric_value(data: Any, where: str) -> MetricValue:
    """A metric value read back by its JSON shape: an object is an interval, an integer a
    count, any other number a float. So records need not know the metric registry, and a
    plug-in metric's values survive a read in a process without the plug-in."""
    if isinstance(data, dict):
        return from_json(Interval, data, where)
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    return from_json(float | None, data, where)


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateResult:
    info: CandidateInfo
    verdict: GateVerdict
    reasons: tuple[str, ...]
    rules: tuple[RuleResult, ...]
    metrics: CandidateMetrics
    review: ReviewStatus

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def gated(self) -> bool:
        return self.info.gated

    @property
    def noise_floor(self) -> bool:
        return self.info.noise_floor

    def to_json(self) -> dict[str, Any]:
        m = self.metrics
        return to_json(self.info) | {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "rules": to_json(self.rules),
            "metrics": to_json(dict(m.values)),
            "distribution": to_json(m.distribution),
            "slices": to_json(m.slices),
            "review": to_json(self.review),
        }

    @classmethod
    def from_json(cls, data: Any) -> CandidateResult:
        values = from_json(dict[str, Any], data.get("metrics"), "$.metrics")
        typed = {name: metric_value(v, f"$.metrics.{name}") for name, v in values.items()}
        metrics = CandidateMetrics(
            values=typed,
            distribution=from_json(
                DistributionMetrics | None, data.get("distribution"), "$.distribution"
            ),
            slices=from_json(tuple[SliceRow, ...], data.get("slices"), "$.slices"),
        )
        info = from_json(
            CandidateInfo, {k: data.get(k) for k in CandidateInfo.__dataclass_fields__}
        )
        return cls(
            info=info,
            verdict=data["verdict"],
            reasons=tuple(data["reasons"]),
            rules=from_json(tuple[RuleResult, ...], data["rules"]),
            metrics=metrics,
            review=from_json(ReviewStatus, data["review"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineOutput:
    output: str
    score: float | None
    reference_ppl: float | None
    extracted: str | None = None  # what the scorer compared, when extraction changed it
    cut_off: bool = False  # ended at max_new_tokens: no final answer yet
    broken: str | None = None  # why it breaks the item's tools or response_format


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateOutput:
    output: str
    score: float | None
    outcome: str
    similarity: float
    first_divergence: int | None
    kld_mean: float | None
    kld_max: float | None
    reference_ppl: float | None
    first_top1_divergence: int | None
    options: tuple[Option, ...] | None
    review: Verdict | None
    extracted: str | None = None  # what the scorer compared, when extraction changed it
    meaning: float | None = None  # reference-free items: embedding similarity to the baseline
    cut_off: bool = False  # ended at max_new_tokens: no final answer yet
    # Reference-free items: (baseline's final answer, candidate's) where they differ, and
    # the answer kind compared (`detected:KIND` when no tag or regex named it).
    answer_change: tuple[str | None, str | None] | None = None
    answer_kind: str | None = None
    broken: str | None = None  # why it breaks the item's tools or response_format


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    id: str
    source: str
    difficulty: str
    weight: float
    tags: tuple[str, ...]
    scorer: str
    prompt: str | None
    messages: list[dict[str, Any]] | None
    reference: tuple[str, ...]
    baseline: BaselineOutput
    candidates: dict[str, CandidateOutput]
    # What the item declares its outputs must keep: "tools: get_weather, ..." and/or
    # "response_format: json_schema person"; None: nothing
    declared: str | None = None


def _declared(item: EvalItem) -> str | None:
    parts = []
    if item.tools:
        parts.append("tools: " + ", ".join(t.name for t in item.tools))
    if (fmt := item.response_format) is not None:
        parts.append(f"response_format: {fmt.type}" + (f" {fmt.name}" if fmt.name else ""))
    return "; ".join(parts) or None


def _ppl(nll: float | None) -> float | None:
    return None if nll is None else math.exp(nll)


def item_results(
    paired: dict[str, list[PairedItem]], verdicts: dict[str, dict[str, Verdict]]
) -> tuple[ItemResult, ...]:
    """One row per item, every candidate's side of it; items in eval-set order. A candidate
    of a sequential run that stopped early has no side on the items after its last."""
    rows = []
    first = max(paired.values(), key=len)
    for i, p in enumerate(first):
        item = p.item
        cands = {
            name: CandidateOutput(
                output=q[i].candidate.output,
                score=q[i].candidate.score,
                outcome=q[i].outcome.value,
                similarity=q[i].similarity,
                first_divergence=q[i].first_divergence,
                kld_mean=q[i].kld_mean,
                kld_max=q[i].kld_max,
                reference_ppl=_ppl(q[i].candidate.reference_nll),
                first_top1_divergence=q[i].first_top1_divergence,
                options=q[i].options or None,
                review=verdicts.get(name, {}).get(item.id),
                extracted=q[i].candidate.extracted,
                meaning=q[i].meaning,
                cut_off=q[i].candidate.cut_off,
                answer_change=q[i].answer_change,
                answer_kind=q[i].answer_kind,
                broken=q[i].candidate.broken,
            )
            for name, q in paired.items()
            if i < len(q)
        }
        rows.append(
            ItemResult(
                id=item.id,
                source=str(item.source),
                difficulty=item.difficulty.value,
                weight=item.weight,
                tags=item.tags,
                scorer=str(item.scorer),
                prompt=item.prompt,
                messages=messages_json(item),
                reference=item.reference,
                baseline=BaselineOutput(
                    output=p.baseline.output,
                    score=p.baseline.score,
                    reference_ppl=_ppl(p.baseline.reference_nll),
                    extracted=p.baseline.extracted,
                    cut_off=p.baseline.cut_off,
                    broken=p.baseline.broken,
                ),
                candidates=cands,
                declared=_declared(item),
            )
        )
    return tuple(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class Results:
    """results.json: the run's header, then what came of it."""

    header: RunHeader
    determinism: tuple[str, ...]
    candidates: tuple[CandidateResult, ...]
    items: tuple[ItemResult, ...]
    review_imports: tuple[dict[str, Any], ...] = ()
    ladder: Ladder | None = None  # a run whose config has [ladder]

    def to_json(self) -> dict[str, Any]:
        rest = {n: to_json(getattr(self, n)) for n in self.__dataclass_fields__ if n != "header"}
        return self.header.to_json() | rest

    @property
    def baseline_note(self) -> str | None:
        """Said before any verdict when the baseline cannot do the set (`BASELINE_FLOOR`)."""
        for c in self.candidates:
            acc = c.metrics["weighted_accuracy"]
            if isinstance(acc, Interval) and acc.baseline < BASELINE_FLOOR:
                return (
                    f"The baseline scores {acc.baseline:.1%} on the reference-scored items: it "
                    "cannot do this set, and the comparison says little about quantization "
                    "(a candidate cannot lose what the baseline never had)."
                )
        return None

    @classmethod
    def from_json(cls, data: Any) -> Results:
        check_schema(data, "results.json")
        rest = [n for n in cls.__dataclass_fields__ if n != "header"]
        return cls(header=RunHeader.from_json(data), **_fields(cls, data, rest))


# Below this weighted accuracy the baseline cannot do the set: every drop is bounded by it.
# SmolLM2 fp32 scores 79% on evalsets/real and 12-35% on the long-context families; a model
# whose tokenizer is not its own answered `1 1 1 ...` and scored 0 (issue 35).
BASELINE_FLOOR = 0.05
