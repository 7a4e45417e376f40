"""What a compare config asks for, as frozen records (parsed and checked in `config.py`).

The TOML table `[generation]` is `GenerationSettings` and `CompareConfig.generation`: one
name for one concept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.records.errors import RecordError

# Weight dtypes a model may be loaded in (an engine maps the names to its own types).
DTYPES = ("float32", "bfloat16", "float16")
# compressed-tensors' preset schemes (0.19), so that configs are checked without loading it;
# `quantize` checks again against the installed library.
SCHEMES = (
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
)
# AWQ is left out: llm-compressor 0.14's AWQ refuses to run without an accelerator, so it
# could not be tested here; a `recipe` YAML file can still ask for it.
METHODS = ("rtn", "gptq")
CALIBRATED = ("gptq",)  # methods that need a calibration set
BOUNDS = ("upper_ci", "point")
GateLimit = float | int | bool


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to reach a model behind an OpenAI-compatible server (`backend = "openai"`)."""

    base_url: str  # up to and without /v1: http://127.0.0.1:8000
    model: str  # the served model's name (the request's "model" field)
    api_key_env: str | None = None  # the environment variable holding the key, never the key
    concurrency: int = 4  # requests in flight at once
    timeout: float = 120.0  # seconds per request
    retries: int = 4  # more tries on 429/5xx/connection errors, with exponential backoff
    top_logprobs: int = 20  # alternatives per position (OpenAI's cap is 20; vLLM's default too)
    prompt_logprobs: bool = False  # the server returns prompt log-probs (vLLM): teacher forcing

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise RecordError(f"base_url {self.base_url!r} must start with http:// or https://")
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0:
            raise RecordError("concurrency >= 1, retries >= 0 and timeout > 0 are required")
        if not 1 <= self.top_logprobs <= 1000:
            raise RecordError("top_logprobs must be between 1 and 1000")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    path: str  # local dir or hub id; a .gguf file for llama.cpp; the tokenizer dir for openai
    dtype: str = "float32"
    device: str = "cpu"
    backend: str = "hf"  # a key of the engine table (`harness.run.backends.ENGINES`)
    threads: int | None = None  # CPU threads of an in-process engine (llama.cpp); None: all
    context: int | None = None  # context length to allocate (llama.cpp); None: the model's
    server: ServerSpec | None = None  # backend = "openai" only

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise RecordError(f"model {self.name!r}: dtype must be one of {', '.join(DTYPES)}")
        if (self.server is not None) != (self.backend == "openai"):
            raise RecordError(f"model {self.name!r}: server settings go with backend 'openai'")


# llama-quantize's types (llama.cpp 0.3.36's list); `quantize` checks again against the tool.
GGUF_TYPES = (
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
)
# Types whose llama-quantize refuses to run without an importance matrix.
NEEDS_IMATRIX = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M")


@dataclass(frozen=True, slots=True)
class GgufSpec:
    """`quantize = { engine = "llama.cpp", type = "Q4_K_M", imatrix = "calib.jsonl" }`: the
    baseline converted to GGUF (convert_hf_to_gguf.py), an importance matrix computed on the
    calibration set when given (llama-imatrix), then llama-quantize."""

    type: str
    imatrix: str | None = None  # eval-set JSONL file whose texts calibrate the matrix
    imatrix_chunks: int = 64  # llama-imatrix --chunks
    imatrix_context: int = 512  # llama-imatrix -c
    outtype: str = "f32"  # convert_hf_to_gguf.py --outtype of the unquantized GGUF

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


@dataclass(frozen=True, slots=True)
class QuantizeSpec:
    scheme: str
    method: str
    calibration: str | None = None  # JSONL eval-set file; required by gptq
    samples: int = 128
    max_seq_length: int = 512
    group_size: int | None = None  # None: the scheme's own (128 for W8A16 and W4A16)
    ignore: tuple[str, ...] = ("lm_head",)  # module names or `re:` patterns kept as they are
    recipe: str | None = None  # an llm-compressor recipe YAML file, used instead of the above

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES or self.method not in METHODS:
            raise RecordError(f"unsupported quantization {self.scheme}/{self.method}")
        if (self.method in CALIBRATED) != (self.calibration is not None):
            raise RecordError(f"{'/'.join(CALIBRATED)} need a calibration set; rtn takes none")
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


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """The `[generation]` table: one explicit greedy decoding for every model."""

    max_new_tokens: int = 32
    batch_size: int = 32
    stop: tuple[str, ...] = ()
    distribution: bool = True  # teacher-forced KLD, top-1 agreement, Δp, perplexity ratio


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The `[gate]` table: a limit per gate key (keys and their checks are declared in
    `harness.analysis.candidate_metrics`, which refuses any other), and `bound`: the pessimistic end
    of the paired interval (`upper_ci`, default) or the point estimate (`point`)."""

    limits: Mapping[str, GateLimit] = field(default_factory=dict)
    bound: str = "upper_ci"

    def __post_init__(self) -> None:
        if self.bound not in BOUNDS:
            raise RecordError(f"bound must be one of {', '.join(BOUNDS)}")

    @classmethod
    def of(cls, bound: str = "upper_ci", **limits: GateLimit | None) -> GateConfig:
        """`GateConfig.of(max_hard_regressions=2)`; a None limit is a rule left off."""
        return cls({k: v for k, v in limits.items() if v is not None}, bound)


# Where `make real-model` puts the sentence-embedding model (relative to the working dir).
DEFAULT_EMBEDDER = ".cache/harness/models/all-MiniLM-L6-v2"
# Measured on hand-written pairs (tests/data/meaning_pairs.jsonl; README "Reference-free
# items"): paraphrases score 0.75-0.99, other meanings 0.00-0.77. At 0.8 no pair of other
# meanings passes as equivalent; the paraphrases it misses go to a reviewer as diverged.
DEFAULT_EQUIVALENCE = 0.8


@dataclass(frozen=True, slots=True)
class AgreementSettings:
    """The `[agreement]` table: how reference-free items are judged."""

    model: str = DEFAULT_EMBEDDER  # a sentence-transformers checkpoint dir
    threshold: float = DEFAULT_EQUIVALENCE  # cosine at or above it: the same meaning

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise RecordError("agreement threshold must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class StatsConfig:
    bootstrap_samples: int = 2000
    seed: int = 0
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class LmEvalConfig:
    tasks: tuple[str, ...]
    include_path: str | None = None
    num_fewshot: int | None = None
    limit: int | None = None
    # What users of instruct models pass on lm-eval's own command line:
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    gen_kwargs: str | None = None  # "temperature=0,max_gen_toks=64", lm-eval's own form


@dataclass(frozen=True, slots=True)
class CandidateSpec:
    """A `[[candidates]]` entry: a checkpoint, or a recipe that `quantize` turns into one."""

    name: str
    model: ModelSpec | None  # a checkpoint; None until a `quantize` candidate is made
    quantize: QuantizeSpec | GgufSpec | None = None
    gated: bool = True


@dataclass(frozen=True, slots=True)
class CorpusSettings:
    """The `[corpus]` table: perplexity and KLD over a plain-text file (`harness corpus`)."""

    text: str  # a UTF-8 text file
    context: int = 512  # tokens per chunk (llama-perplexity -c)
    chunks: int | None = None  # at most this many chunks (llama-perplexity --chunks)
    reference: str | None = None  # the model the others are measured against (the baseline)

    def __post_init__(self) -> None:
        if self.context < 4:
            raise RecordError("corpus context must be at least 4 tokens")


@dataclass(frozen=True, slots=True)
class LadderSettings:
    """The `[ladder]` table: its rungs are the run's candidates, heaviest first as listed.
    The release decision: `target` (a rung's name) must pass; with `max_size_mb`, some rung
    at most that size on disk must pass; with neither, some rung must pass."""

    rungs: tuple[str, ...]
    target: str | None = None
    max_size_mb: float | None = None

    def __post_init__(self) -> None:
        if not self.rungs:
            raise RecordError("a ladder needs at least one rung")
        if self.target is not None and self.target not in self.rungs:
            raise RecordError(f"target {self.target!r} names no rung")
        if self.max_size_mb is not None and not self.max_size_mb > 0:
            raise RecordError("max_size_mb must be a number > 0")


@dataclass(frozen=True, slots=True)
class CompareConfig:
    name: str
    path: Path
    evalsets: tuple[str, ...]
    baseline: ModelSpec
    candidates: tuple[CandidateSpec, ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    gate: GateConfig = field(default_factory=GateConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    noise_floor: bool = False  # [noise_floor] enabled: run the baseline twice, compare the runs
    lm_eval: LmEvalConfig | None = None  # [lm_eval]: lm-eval tasks run on every model
    agreement: AgreementSettings = field(default_factory=AgreementSettings)
    corpus: CorpusSettings | None = None  # [corpus]: what `harness corpus` scores
    ladder: LadderSettings | None = None  # [ladder]: the candidates are its rungs


@dataclass(frozen=True, slots=True)
class ReadyCandidate:
    """A candidate with a checkpoint on disk (made by `quantize` when the config asks)."""

    spec: ModelSpec
    gated: bool
    fingerprint: str
    quantize: QuantizeSpec | GgufSpec | None = None
    calibration_sha256: str | None = None
    quantize_seconds: float = 0.0
    quantize_cached: bool = False
    noise_floor: bool = False  # the baseline itself, run a second time


def noise_floor_name(baseline: str) -> str:
    return f"{baseline}-rerun"
