"""What a compare config asks for, as frozen records, each setting declared once
(`harness.records.schema.setting`: type, default, constraint, doc). `harness.inputs.config`
reads the TOML tables against these declarations; `harness schema` (`make docs`) writes the
reference and the JSON Schema from them.

The TOML table `[generation]` is `GenerationSettings` and `CompareConfig.generation`: one
name for one concept."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.records.errors import RecordError
from harness.records.schema import setting

# A model's name names files and folders.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_RULE = "letters, digits, '.', '_' and '-', first a letter or digit (it names files)"
# Weight dtypes a model may be loaded in (an engine maps the names to its own types).
Dtype = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = typing.get_args(Dtype)
# compressed-tensors' preset schemes (0.19), so that configs are checked without loading it;
# `quantize` checks again against the installed library.
Scheme = Literal[
    "W8A16",
    "W4A16",
    "W4A16_ASYM",
    "W8A8",
    "W4A8",
    "W4A4",
    "INT8",
    "FP8",
    "FP8_DYNAMIC",
    "FP8_BLOCK",
    "NVFP4",
    "NVFP4A16",
    "MXFP4",
    "MXFP4A16",
    "MXFP8",
    "MXFP8A16",
    "W4AFP8",
    "W2A16",
    "W3A16",
    "W5A16",
    "W6A16",
    "W7A16",
    "W2A8",
    "W3A8",
    "W5A8",
    "W6A8",
    "W7A8",
    "W2A4",
    "W3A4",
]
SCHEMES: tuple[str, ...] = typing.get_args(Scheme)
# AWQ is left out: llm-compressor 0.14's AWQ refuses to run without an accelerator, so it
# could not be tested here; a `recipe` YAML file can still ask for it.
Method = Literal["rtn", "gptq"]
METHODS: tuple[str, ...] = typing.get_args(Method)
CALIBRATED = ("gptq",)  # methods that need a calibration set
# Where a gate judges an interval: its pessimistic end, or the point estimate.
Bound = Literal["upper_ci", "point"]
BOUNDS: tuple[str, ...] = typing.get_args(Bound)
GateLimit = float | int | bool
# What a gate says of a rule, a candidate and a ladder's release: `pass` (the pessimistic end
# of each interval is within its limit), `fail` (a loss is shown: an optimistic end is beyond
# it), `undecided` (an interval straddles its limit: the run cannot tell).
GateVerdict = Literal["pass", "fail", "undecided"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """`[baseline]`, a `[[candidates]]` or `[[ladder.rungs]]` entry: a model and its engine.
    `settings` holds the engine's own record (its keys sit in the same table: the openai
    engine's `base_url`, `model`, ...), or None for an engine that declares none."""

    name: str = setting(
        doc="the model's name in reports; it names files", pattern=NAME_PATTERN, means=NAME_RULE
    )
    path: str = setting(
        doc="a local checkpoint folder or a hub id `org/name`; a .gguf file for llama.cpp; "
        "the tokenizer folder for openai",
        path="model",
    )
    dtype: Dtype = setting("float32", doc="weight dtype the model is loaded in")
    device: str = setting("cpu", doc="torch device: cpu, cuda, cuda:1, ...", nonempty=True)
    backend: str = setting(
        "hf",
        doc="the engine that runs it: hf, llama.cpp, openai, a plug-in's name, or "
        "'package.module:Class'",
        nonempty=True,
    )
    threads: int | None = setting(
        None, doc="CPU threads of an in-process engine (llama.cpp); left out: all", gt=0
    )
    context: int | None = setting(
        None, doc="context length to allocate (llama.cpp); left out: the model's", gt=0
    )
    chat_template: str | None = setting(
        None,
        doc="a Jinja chat-template file for chat (`messages`) items, in place of the model's "
        "own (a base model ships none)",
        path="file",
    )
    settings: Any = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise RecordError(f"model {self.name!r}: dtype must be one of {', '.join(DTYPES)}")


# llama-quantize's types (llama.cpp 0.3.36's list); `quantize` checks again against the tool.
GgufType = Literal[
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ1_S",
    "IQ1_M",
    "TQ1_0",
    "TQ2_0",
    "Q2_K",
    "Q2_K_S",
    "IQ3_XXS",
    "IQ3_S",
    "IQ3_M",
    "Q3_K",
    "IQ3_XS",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "IQ4_NL",
    "IQ4_XS",
    "Q4_K",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
    "MXFP4_MOE",
    "F16",
    "BF16",
    "F32",
]
GGUF_TYPES: tuple[str, ...] = typing.get_args(GgufType)
# Types whose llama-quantize refuses to run without an importance matrix.
NEEDS_IMATRIX = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M")


@dataclass(frozen=True, slots=True, kw_only=True)
class GgufSpec:
    """`quantize = { engine = "llama.cpp", type = "Q4_K_M", imatrix = "calib.jsonl" }`: the
    baseline converted to GGUF (convert_hf_to_gguf.py), an importance matrix computed on the
    calibration set when given (llama-imatrix), then llama-quantize."""

    type: GgufType = setting(doc="llama-quantize's type")
    imatrix: str | None = setting(
        None,
        doc="an eval-set JSONL file whose texts calibrate the importance matrix",
        path="file",
    )
    imatrix_chunks: int = setting(64, doc="llama-imatrix --chunks", gt=0)
    imatrix_context: int = setting(512, doc="llama-imatrix -c (tokens per chunk)", gt=0)
    outtype: Literal["f32", "f16", "bf16"] = setting(
        "f32", doc="convert_hf_to_gguf.py --outtype of the unquantized GGUF"
    )

    def __post_init__(self) -> None:
        if self.type not in GGUF_TYPES:
            raise RecordError(f"unknown GGUF type {self.type!r}")
        if self.type in NEEDS_IMATRIX and self.imatrix is None:
            raise RecordError(f"GGUF type {self.type} needs an importance matrix (imatrix)")
        if self.outtype not in ("f32", "f16", "bf16"):
            raise RecordError("outtype must be f32, f16 or bf16")

    @property
    def calibration(self) -> str | None:
        return self.imatrix

    def recipe_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("imatrix")
        d["engine"] = "llama.cpp"
        return d

    def describe(self) -> str:
        source = "" if self.imatrix is None else f", imatrix {Path(self.imatrix).name}"
        return f"GGUF {self.type} (llama.cpp){source}"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantizeSpec:
    """`quantize = { scheme = "W4A16", method = "gptq", calibration = "calib.jsonl" }`: a
    compressed-tensors checkpoint made by llm-compressor (the format vLLM serves)."""

    scheme: Scheme = setting(doc="a compressed-tensors preset scheme")
    method: Method = setting(doc="rtn (round to nearest) or gptq (needs `calibration`)")
    calibration: str | None = setting(
        None, doc="an eval-set JSONL file of calibration texts; gptq needs one", path="file"
    )
    samples: int = setting(128, doc="calibration samples taken (deterministically)", gt=0)
    max_seq_length: int = setting(512, doc="tokens per calibration sample", gt=0)
    group_size: int | None = setting(
        None, doc="quantization group size; left out: the scheme's (128 for W8A16, W4A16)", gt=0
    )
    ignore: tuple[str, ...] = setting(
        ("lm_head",), doc="module names or `re:` patterns kept in full precision"
    )
    recipe: str | None = setting(
        None,
        doc="an llm-compressor recipe YAML file, used instead of scheme/method/group_size/ignore",
        path="file",
    )

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES or self.method not in METHODS:
            raise RecordError(f"unsupported quantization {self.scheme}/{self.method}")
        if self.method in CALIBRATED and self.calibration is None:
            raise RecordError(f"method {self.method} needs a calibration set")
        if self.method not in CALIBRATED and self.calibration is not None:
            raise RecordError(f"method {self.method} uses no calibration set")
        if self.group_size is not None and self.group_size <= 0:
            raise RecordError("group_size must be a positive integer")

    def recipe_dict(self) -> dict[str, Any]:
        """What defines the result (files by content, not by path: see `quantize`)."""
        d = asdict(self)
        d.pop("calibration")
        d.pop("recipe")
        return d

    def describe(self) -> str:
        """For "Made by": the recipe in words."""
        if self.recipe is not None:
            return f"recipe {self.recipe}"
        group = "" if self.group_size is None else f" g{self.group_size}"
        kept = "" if self.ignore == ("lm_head",) else f", keeping {', '.join(self.ignore)}"
        return f"{self.scheme}{group} {self.method.upper()}{kept}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherRecipe:
    """A plug-in quantizer's recipe as the run records keep it: its engine, its settings as
    written, and what it says of itself (run.json and results.json read back only the
    built-in recipes' own records)."""

    engine: str
    settings: dict[str, Any]
    description: str
    calibration: str | None = None

    def recipe_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, **self.settings}

    def describe(self) -> str:
        return self.description


Recipe = QuantizeSpec | GgufSpec | OtherRecipe


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationSettings:
    """The `[generation]` table: one explicit greedy decoding for every model."""

    max_new_tokens: int = setting(
        32, doc="tokens generated at most per item (an item's own max_new_tokens wins)", gt=0
    )
    batch_size: int = setting(32, doc="prompts per batch", gt=0)
    stop: tuple[str, ...] = setting((), doc="outputs are cut at the first of these strings")
    distribution: bool = setting(
        True, doc="teacher-forced KLD, top-1 agreement, Δp and perplexity ratio"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GateSettings:
    """The `[gate]` table: a limit per gate key (keys and their checks are declared with the
    metrics, `harness.analysis.metrics`, which refuses any other), and `bound`."""

    limits: Mapping[str, GateLimit] = field(default_factory=dict)
    bound: Bound = setting(
        "upper_ci",
        doc="where drops and the regression share are judged: the pessimistic end of their "
        "paired interval (`upper_ci`) or the point estimate (`point`)",
    )

    def __post_init__(self) -> None:
        if self.bound not in BOUNDS:
            raise RecordError(f"bound must be one of {', '.join(BOUNDS)}")

    @classmethod
    def of(cls, bound: Bound = "upper_ci", **limits: GateLimit | None) -> GateSettings:
        """`GateSettings.of(max_hard_regressions=2)`; a None limit is a rule left off."""
        return cls(limits={k: v for k, v in limits.items() if v is not None}, bound=bound)


# Where `make real-model` puts the sentence-embedding model: under the harness home's models/
# (`harness.records.home`), whatever folder the harness runs from.
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# Measured on hand-written pairs (tests/data/meaning_pairs.jsonl; docs/metrics.md): paraphrases
# score 0.75-0.99, other meanings 0.00-0.77. At 0.8 no pair of other meanings passes as
# equivalent; the paraphrases it misses go to a reviewer as diverged.
DEFAULT_EQUIVALENCE = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementSettings:
    """The `[agreement]` table: how reference-free items are judged."""

    model: str = setting(
        DEFAULT_EMBEDDER,
        doc="a sentence-transformers checkpoint folder (default: all-MiniLM-L6-v2 in the "
        "harness home's models/, where `make real-model` puts it)",
        path="path",
    )
    threshold: float = setting(
        DEFAULT_EQUIVALENCE,
        doc="cosine similarity at or above which two answers mean the same",
        gt=0,
        le=1,
        means="a cosine similarity in (0, 1]",
    )

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise RecordError("agreement threshold must be in (0, 1]")
        if self.model == DEFAULT_EMBEDDER:  # a default resolves against the harness home
            from harness.records.home import models

            object.__setattr__(self, "model", str(models() / DEFAULT_EMBEDDER))


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsSettings:
    """The `[stats]` table: the betting intervals every paired drop and share is given
    (harness.analysis.betting; docs/metrics.md)."""

    orders: int = setting(
        8,
        doc="seeded item orders whose betting capitals are averaged (more: steadier, slower)",
        gt=0,
        le=64,
    )
    seed: int = setting(0, doc="the seed of those orders (numpy takes no negative seed)", ge=0)
    confidence: float = setting(0.95, doc="the intervals' confidence level", gt=0, lt=1)


def _edges(name: str, edges: tuple[int, ...]) -> None:
    if any(e <= 0 for e in edges) or list(edges) != sorted(set(edges)):
        raise RecordError(f"{name} must be increasing token counts > 0; got {list(edges)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceSettings:
    """The `[slices]` table: every report slices its items by prompt length and by the
    baseline's output length, in tokens, at these bucket edges (a bucket holds lengths from
    its lower edge up to the next edge, exclusive)."""

    prompt_tokens: tuple[int, ...] = setting(
        (128, 512, 2048), doc="prompt-length bucket edges, in tokens"
    )
    output_tokens: tuple[int, ...] = setting(
        (16, 64, 256), doc="bucket edges of the baseline's output length, in tokens"
    )

    def __post_init__(self) -> None:
        _edges("prompt_tokens", self.prompt_tokens)
        _edges("output_tokens", self.output_tokens)


StoreKind = Literal["auto", "full", "top-k"]
DistributionMode = Literal["stored", "lockstep"]
# From the measurement in docs/metrics.md ("A bounded baseline store", SmolLM2's chat items):
# k = 512 kept the KLD within 1.5% of exact for W8A16 and W4A16, k = 128 within 4.6% (too
# near the 5% we promise), and 512 keeps a 128k vocabulary's 1,000 x 256 tokens at 1.05 GB.
DEFAULT_TOP_K = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionSettings:
    """The `[distribution]` table: how the baseline's log-probs are kept for the candidates'
    KLD, top-1 agreement and Δp (`[generation] distribution` turns them off)."""

    store: StoreKind = setting(
        "auto",
        doc="`full`: every position's whole row, exact KLD; `top-k`: the k largest log-probs "
        "and the exact rest mass, KLD a lower bound; `auto`: full unless its projected size "
        "is over `max_store_gb`",
    )
    top_k: int = setting(DEFAULT_TOP_K, doc="log-probs kept per position by `top-k`", gt=0)
    max_store_gb: float = setting(
        2.0, doc="`auto` keeps top-k rows when full rows would take more (GB, 10^9 bytes)", gt=0
    )
    mode: DistributionMode = setting(
        "stored",
        doc="`stored`: the baseline's log-probs kept on disk (`store`) for the candidates; "
        "`lockstep`: no store, the baseline is loaded beside each candidate and scores its own "
        "outputs again batch by batch: exact full-vocabulary KLD, refused up front when both "
        "models and a batch's rows do not fit in free memory",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseFloorSettings:
    """The `[noise_floor]` table."""

    enabled: bool = setting(
        False, doc="run the baseline a second time and show the self-comparison"
    )
    batched: int | None = setting(
        None,
        doc="the batching noise floor: a llama.cpp baseline run again with this many sequences "
        "per batch (its `parallel`), against itself one at a time",
        gt=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LmEvalSettings:
    """The `[lm_eval]` table: lm-evaluation-harness tasks run on every model."""

    tasks: tuple[str, ...] = setting(doc="lm-eval task names", nonempty=True)
    include_path: str | None = setting(
        None, doc="a folder of task YAMLs (lm-eval --include_path)", path="path"
    )
    num_fewshot: int | None = setting(None, doc="few-shot examples per prompt", ge=0)
    limit: int | None = setting(None, doc="documents per task at most", gt=0)
    # What users of instruct models pass on lm-eval's own command line:
    apply_chat_template: bool = setting(False, doc="lm-eval --apply_chat_template")
    fewshot_as_multiturn: bool = setting(False, doc="lm-eval --fewshot_as_multiturn")
    system_instruction: str | None = setting(None, doc="lm-eval --system_instruction")
    gen_kwargs: str | None = setting(
        None, doc='lm-eval --gen_kwargs, its own form: "temperature=0,max_gen_toks=64"'
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateSpec:
    """A `[[candidates]]` entry: a checkpoint, or a recipe that `quantize` turns into one."""

    name: str
    model: ModelSpec | None  # a checkpoint; None until a `quantize` candidate is made
    quantize: Any = None  # a quantizer's settings record (harness.run.quantize.QUANTIZERS)
    gated: bool = setting(True, doc="whether the candidate decides the exit code")


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusSettings:
    """The `[corpus]` table: perplexity and KLD over a plain-text file (`harness corpus`)."""

    text: str = setting(doc="a UTF-8 text file", path="file")
    context: int = setting(512, doc="tokens per chunk (llama-perplexity -c)", ge=4)
    chunks: int | None = setting(
        None, doc="at most this many chunks (llama-perplexity --chunks)", gt=0
    )
    reference: str | None = setting(
        None, doc="the model the others are measured against (default: the baseline)"
    )

    def __post_init__(self) -> None:
        if self.context < 4:
            raise RecordError("corpus context must be at least 4 tokens")


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderSettings:
    """The `[ladder]` table: its rungs are the run's candidates, heaviest first as listed.
    The release decision: `target` (a rung's name) must pass; with `max_size_mb`, some rung
    at most that size on disk must pass; with neither, some rung must pass."""

    rungs: tuple[str, ...]
    target: str | None = setting(None, doc="the rung that must pass (only it is gated)")
    max_size_mb: float | None = setting(
        None, doc="some rung at most this size on disk must pass", gt=0
    )

    def __post_init__(self) -> None:
        if not self.rungs:
            raise RecordError("a ladder needs at least one rung")
        if self.target is not None and self.target not in self.rungs:
            raise RecordError(f"target {self.target!r} names no rung")
        if self.max_size_mb is not None and not self.max_size_mb > 0:
            raise RecordError("max_size_mb must be a number > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialSettings:
    """The `[sequential]` table: the eval sets are a pool, drawn in a seeded order that keeps
    the pool's mix of difficulty and tags in every prefix, and evaluated `step` items a round.
    After each round an anytime-valid test decides each gated rule on an interval; a candidate
    stops once every such rule is decided (or one fails), the run once every candidate has
    stopped or `max_items` are spent (docs/metrics.md, "Sequential evaluation")."""

    step: int = setting(100, doc="items added each round", ge=1)
    min_items: int = setting(200, doc="items every candidate runs before it may stop", ge=1)
    max_items: int | None = setting(
        None, doc="the most items a candidate runs (default: the whole pool)", ge=1
    )
    seed: int = setting(0, doc="the seed of the pool's order")

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < self.min_items:
            raise RecordError(f"max_items {self.max_items} is below min_items {self.min_items}")


# The signal the traffic pool's hard stratum is cut on (harness.run.mining).
Signal = Literal["min_margin", "mean_margin", "mean_entropy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficSettings:
    """The `[traffic]` table: `harness traffic sample` runs the baseline once over an imported
    pool, cuts it into a hard stratum (where the baseline was least sure) and the rest, and
    draws a weighted eval set that oversamples the hard one (docs/traffic.md). Beside `out` it
    writes `<out>.signals.jsonl`, `<out>.sample.json` and, with `calibration`,
    `<out>.calibration.jsonl`."""

    # Read by `traffic sample` only: a compare on the drawn set does not need it to exist.
    pool: str = setting(doc="the pool: an eval set, e.g. `harness traffic import`'s", path="path")
    out: str = setting(doc="the weighted eval set to write (JSONL)", path="path")
    size: int = setting(doc="items drawn into the eval set", ge=2)
    signal: Signal = setting(
        "min_margin", doc="what the hard stratum is cut on (docs/traffic.md: why this one)"
    )
    hard_share: float = setting(
        0.2,
        doc="share of the pool in the hard stratum (lowest margin or highest entropy)",
        gt=0,
        lt=1,
    )
    hard_fraction: float = setting(
        0.5, doc="share of the eval set drawn from the hard stratum", gt=0, lt=1
    )
    calibration: int = setting(
        0, doc="calibration items drawn from the pool outside the eval set (GPTQ, imatrix)", ge=0
    )
    seed: int = setting(0, doc="the draw's seed", ge=0)

    def beside(self, what: str) -> Path:
        """A file written next to `out`: `<out without .jsonl>.<what>`."""
        out = Path(self.out)
        return out.with_name(out.name.removesuffix(".jsonl") + f".{what}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareConfig:
    """The whole config file; its top-level keys are `name` and `evalsets`, the rest tables."""

    name: str = setting(
        doc="the run's name: reports/<name>/ unless --out", pattern=NAME_PATTERN, means=NAME_RULE
    )
    path: Path
    evalsets: tuple[str, ...] = setting(
        doc="eval-set JSONL files or globs", nonempty=True, path="path"
    )
    baseline: ModelSpec
    candidates: tuple[CandidateSpec, ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    noise_floor: bool = False  # [noise_floor] enabled: run the baseline twice, compare the runs
    noise_floor_batched: int | None = None  # [noise_floor] batched: the baseline in batches of N
    lm_eval: LmEvalSettings | None = None  # [lm_eval]: lm-eval tasks run on every model
    agreement: AgreementSettings = field(default_factory=AgreementSettings)
    corpus: CorpusSettings | None = None  # [corpus]: what `harness corpus` scores
    ladder: LadderSettings | None = None  # [ladder]: the candidates are its rungs
    sequential: SequentialSettings | None = None  # [sequential]: stop once decided
    traffic: TrafficSettings | None = None  # [traffic]: what `harness traffic sample` draws
    slices: SliceSettings = field(default_factory=SliceSettings)
    distribution: DistributionSettings = field(default_factory=DistributionSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadyCandidate:
    """A candidate with a checkpoint on disk (made by `quantize` when the config asks)."""

    spec: ModelSpec
    gated: bool
    fingerprint: str
    quantize: Recipe | None = None
    calibration_sha256: str | None = None
    quantize_seconds: float = 0.0
    quantize_cached: bool = False
    noise_floor: bool = False  # the baseline itself, run a second time
    batched: int | None = None  # ... in batches of this many sequences (the batching floor)


def noise_floor_name(baseline: str) -> str:
    return f"{baseline}-rerun"


def batched_floor_name(baseline: str, n: int) -> str:
    return f"{baseline}-batched{n}"
