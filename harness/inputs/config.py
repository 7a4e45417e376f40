"""The compare config (TOML): parsed and validated at the edge into frozen records.

Every key is checked: an unknown key, a wrong type or a missing field is a `ConfigError`
whose message names the file and the table (`demo.toml: [gate]: unknown key 'max_drop'`).
Relative paths resolve against the directory of the config file.
"""

from __future__ import annotations

import errno
import math
import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.analysis.candidate_metrics import GATE_KEYS, GATE_RULES
from harness.analysis.gate_rules import Limit
from harness.records import (
    CALIBRATED,
    DTYPES,
    GGUF_TYPES,
    METHODS,
    SCHEMES,
    AgreementSettings,
    CandidateSpec,
    CompareConfig,
    CorpusSettings,
    GateConfig,
    GenerationSettings,
    GgufSpec,
    LadderSettings,
    LmEvalConfig,
    ModelSpec,
    QuantizeSpec,
    ServerSpec,
    StatsConfig,
    noise_floor_name,
)
from harness.records.errors import HarnessError, RecordError
from harness.records.settings import BOUNDS, DEFAULT_EMBEDDER, DEFAULT_EQUIVALENCE, GateLimit
from harness.run.backends import ENGINES
from harness.run.backends import known as known_engine

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(HarnessError):
    """A problem with the config; one line naming the file and the table."""


TOP_KEYS = (
    "name",
    "evalsets",
    "baseline",
    "candidates",
    "generation",
    "gate",
    "stats",
    "noise_floor",
    "lm_eval",
    "agreement",
    "corpus",
    "ladder",
)

LM_EVAL_KEYS = (
    "tasks",
    "include_path",
    "num_fewshot",
    "limit",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "system_instruction",
    "gen_kwargs",
)
SERVER_KEYS = (
    "base_url",
    "model",
    "api_key_env",
    "concurrency",
    "timeout",
    "retries",
    "top_logprobs",
    "prompt_logprobs",
)
MODEL_KEYS = ("name", "path", "dtype", "device", "backend", "threads", "context", *SERVER_KEYS)
CANDIDATE_KEYS = (*MODEL_KEYS, "quantize", "gated")
LADDER_KEYS = ("rungs", "target", "max_size_mb")
RUNG_KEYS = (*MODEL_KEYS, "quantize")  # a rung is a candidate; the ladder decides the gating
QUANTIZE_KEYS = (
    "scheme",
    "method",
    "calibration",
    "samples",
    "max_seq_length",
    "group_size",
    "ignore",
    "recipe",
    "engine",
)
GGUF_KEYS = ("engine", "type", "imatrix", "imatrix_chunks", "imatrix_context", "outtype")
GENERATION_KEYS = ("max_new_tokens", "batch_size", "stop", "distribution")
STATS_KEYS = ("bootstrap_samples", "seed", "confidence")


class _Table:
    """One TOML table being read: typed getters whose errors name file and table."""

    def __init__(self, data: Any, where: str, keys: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table")
        for key in data:
            if key not in keys:
                raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(keys)})")
        self.data, self.where = data, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return None
        bad_bool = isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )
        if bad_bool or not isinstance(value, kind):
            raise ConfigError(f"{self.where}: {key} has the wrong type ({type(value).__name__})")
        return value

    def need(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise ConfigError(f"{self.where}: missing key {key!r}")
        return self.get(key, kind)

    def positive_int(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if value <= 0:
            raise ConfigError(f"{self.where}: {key} must be a positive integer")
        return int(value)

    def threshold(self, key: str) -> float | None:
        value = self.get(key, (int, float))
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"{self.where}: {key} must be a finite number >= 0")
        return None if value is None else float(value)


def load_config(path: Path) -> CompareConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> CompareConfig:
    top = _Table(data, f"{path}", TOP_KEYS)
    base_dir = path.parent
    name = _name(top, "name", str(path))
    evalsets = top.need("evalsets", list)
    if not evalsets or not all(isinstance(e, str) for e in evalsets):
        raise ConfigError(f"{path}: evalsets must be a non-empty list of paths or globs")
    baseline = _model(
        _Table(top.need("baseline", dict), f"{path}: [baseline]", MODEL_KEYS), base_dir
    )
    raw_candidates = top.get("candidates", list, [])
    candidates = tuple(
        _candidate(_Table(c, f"{path}: [[candidates]] #{i + 1}", CANDIDATE_KEYS), base_dir)
        for i, c in enumerate(raw_candidates)
    )
    ladder = None
    if "ladder" in data:
        if raw_candidates:
            raise ConfigError(
                f"{path}: a ladder lists its models as [[ladder.rungs]], not [[candidates]]"
            )
        candidates, ladder = _ladder(top.get("ladder", dict), base_dir, f"{path}: [ladder]")
    cfg = CompareConfig(
        name=name,
        path=path,
        evalsets=tuple(_resolve(e, base_dir) for e in evalsets),
        baseline=baseline,
        candidates=candidates,
        generation=_generation(
            _Table(top.get("generation", dict, {}), f"{path}: [generation]", GENERATION_KEYS)
        ),
        gate=_gate(_Table(top.get("gate", dict, {}), f"{path}: [gate]", GATE_KEYS)),
        stats=_stats(_Table(top.get("stats", dict, {}), f"{path}: [stats]", STATS_KEYS)),
        noise_floor=_Table(
            top.get("noise_floor", dict, {}), f"{path}: [noise_floor]", ("enabled",)
        ).get("enabled", bool, False),
        lm_eval=_lm_eval(top.get("lm_eval", dict), base_dir, f"{path}: [lm_eval]"),
        agreement=_agreement(
            _Table(top.get("agreement", dict, {}), f"{path}: [agreement]", ("model", "threshold")),
            base_dir,
        ),
        corpus=_corpus(top.get("corpus", dict), base_dir, f"{path}: [corpus]"),
        ladder=ladder,
    )
    check_names(cfg)
    if cfg.corpus is not None and cfg.corpus.reference is not None:
        names = [cfg.baseline.name] + [c.name for c in cfg.candidates]
        if cfg.corpus.reference not in names:
            raise ConfigError(
                f"{path}: [corpus]: reference {cfg.corpus.reference!r} names no model "
                f"(models: {', '.join(names)})"
            )
    return cfg


def _corpus(data: dict[str, Any] | None, base_dir: Path, where: str) -> CorpusSettings | None:
    if data is None:
        return None
    table = _Table(data, where, ("text", "context", "chunks", "reference"))
    text = _input_file(table, "text", base_dir)
    if text is None:
        raise ConfigError(f"{where}: missing key 'text'")
    context = table.positive_int("context", 512)
    if context < 4:
        raise ConfigError(f"{where}: context must be at least 4 tokens")
    return CorpusSettings(
        text=text,
        context=context,
        chunks=None if "chunks" not in data else table.positive_int("chunks", 1),
        reference=table.get("reference", str),
    )


def _ladder(
    data: dict[str, Any], base_dir: Path, where: str
) -> tuple[tuple[CandidateSpec, ...], LadderSettings]:
    """`[ladder]`: rungs (candidate tables without `gated`), `target`, `max_size_mb`. Only
    the target rung is gated (it alone decides the exit code through the gate); every rung
    is judged by the same gate."""
    table = _Table(data, where, LADDER_KEYS)
    raw = table.need("rungs", list)
    rungs = [
        _candidate(_Table(r, f"{where}: [[ladder.rungs]] #{i + 1}", RUNG_KEYS), base_dir)
        for i, r in enumerate(raw)
    ]
    target = table.get("target", str)
    size = table.get("max_size_mb", (int, float))
    try:
        settings = LadderSettings(
            tuple(r.name for r in rungs), target, None if size is None else float(size)
        )
    except RecordError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tuple(replace(r, gated=r.name == target) for r in rungs), settings


def check_names(cfg: CompareConfig) -> None:
    """Every model has its own name (they name files), and there is something to compare."""
    names = [cfg.baseline.name] + [c.name for c in cfg.candidates]
    if cfg.noise_floor:
        names.append(noise_floor_name(cfg.baseline.name))
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"{cfg.path}: model name {n!r} is used twice")
    if not cfg.candidates:
        raise ConfigError(f"{cfg.path}: no [[candidates]]: nothing to compare")


def _resolve(value: str, base_dir: Path) -> str:
    return value if Path(value).is_absolute() else str(base_dir / value)


def _name(table: _Table, key: str, what: str) -> str:
    value = table.need(key, str)
    if not NAME.match(value):
        raise ConfigError(
            f"{table.where}: {key} {value!r} must match {NAME.pattern} (it names files)"
        )
    return str(value)


def _local_or_hub(value: str, base_dir: Path, where: str) -> str:
    """A hub id looks like `org/name` and is not a local path; anything else is a local
    path, resolved against the config's folder. A path that is a symbolic link loop or a
    link to nothing is said as such (it would otherwise pass for a hub id)."""
    local = base_dir / value
    path = Path(value).expanduser() if Path(value).is_absolute() or value.startswith("~") else local
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{where}: path {value!r}: a symbolic link loop ({path})") from None
        if path.is_symlink():
            raise ConfigError(
                f"{where}: path {value!r}: a symbolic link to "
                f"{os.readlink(path)}, which does not exist"
            ) from None
    looks_like_hub_id = value.count("/") == 1 and not value.startswith((".", "/", "~"))
    if looks_like_hub_id and not local.exists():
        return value
    return str(path)


def _model(table: _Table, base_dir: Path) -> ModelSpec:
    dtype = table.get("dtype", str, "float32")
    if dtype not in DTYPES:
        raise ConfigError(f"{table.where}: dtype must be one of {', '.join(DTYPES)}")
    backend = table.get("backend", str, "hf")
    if not known_engine(backend):
        raise ConfigError(
            f"{table.where}: backend must be one of {', '.join(ENGINES)}, "
            "or an import path 'package.module:Class'"
        )
    threads = None if "threads" not in table.data else table.positive_int("threads", 1)
    context = None if "context" not in table.data else table.positive_int("context", 1)
    return ModelSpec(
        name=_name(table, "name", table.where),
        path=_local_or_hub(table.need("path", str), base_dir, table.where),
        dtype=dtype,
        device=table.get("device", str, "cpu"),
        backend=backend,
        threads=threads,
        context=context,
        server=_server(table, backend),
    )


def _server(table: _Table, backend: str) -> ServerSpec | None:
    """The server keys: required with backend 'openai', refused with any other engine."""
    given = [k for k in SERVER_KEYS if k in table.data]
    if backend != "openai":
        if given:
            raise ConfigError(f"{table.where}: {given[0]} is a setting of backend 'openai'")
        return None
    key_env = table.get("api_key_env", str)
    if key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key_env):
        raise ConfigError(
            f"{table.where}: api_key_env names an environment variable (the key itself never "
            "goes in the file)"
        )
    timeout = table.get("timeout", (int, float), 120.0)
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"{table.where}: timeout must be a number of seconds > 0")
    retries = table.get("retries", int, 4)
    if retries < 0:
        raise ConfigError(f"{table.where}: retries must be an integer >= 0")
    try:
        return ServerSpec(
            base_url=str(table.need("base_url", str)).rstrip("/").removesuffix("/v1"),
            model=table.need("model", str),
            api_key_env=key_env,
            concurrency=table.positive_int("concurrency", 4),
            timeout=float(timeout),
            retries=retries,
            top_logprobs=table.positive_int("top_logprobs", 20),
            prompt_logprobs=table.get("prompt_logprobs", bool, False),
        )
    except RecordError as exc:
        raise ConfigError(f"{table.where}: {exc}") from None


def _candidate(table: _Table, base_dir: Path) -> CandidateSpec:
    has_path, has_quant = "path" in table.data, "quantize" in table.data
    if has_path == has_quant:
        raise ConfigError(f"{table.where}: give exactly one of 'path' or 'quantize'")
    gated = table.get("gated", bool, True)
    if has_path:
        return CandidateSpec(
            _name(table, "name", table.where), _model(table, base_dir), None, gated
        )
    raw = table.data["quantize"]
    where = f"{table.where} quantize"
    quant: QuantizeSpec | GgufSpec
    if isinstance(raw, dict) and raw.get("engine", "llm-compressor") == "llama.cpp":
        quant = _gguf(_Table(raw, where, GGUF_KEYS), base_dir)
    else:
        quant = _quantize(_Table(raw, where, QUANTIZE_KEYS), base_dir)
    return CandidateSpec(_name(table, "name", table.where), None, quant, gated)


def _gguf(table: _Table, base_dir: Path) -> GgufSpec:
    kind = table.need("type", str)
    if kind not in GGUF_TYPES:
        raise ConfigError(f"{table.where}: type must be one of {', '.join(GGUF_TYPES)}")
    try:
        return GgufSpec(
            type=kind,
            imatrix=_input_file(table, "imatrix", base_dir),
            imatrix_chunks=table.positive_int("imatrix_chunks", 64),
            imatrix_context=table.positive_int("imatrix_context", 512),
            outtype=table.get("outtype", str, "f32"),
        )
    except RecordError as exc:
        raise ConfigError(f"{table.where}: {exc}") from None


def _quantize(table: _Table, base_dir: Path) -> QuantizeSpec:
    engine = table.get("engine", str, "llm-compressor")
    if engine != "llm-compressor":
        raise ConfigError(f"{table.where}: engine must be 'llm-compressor' or 'llama.cpp'")
    scheme, method = table.need("scheme", str), table.need("method", str)
    if scheme not in SCHEMES:
        raise ConfigError(f"{table.where}: scheme must be one of {', '.join(SCHEMES)}")
    if method not in METHODS:
        raise ConfigError(f"{table.where}: method must be one of {', '.join(METHODS)}")
    calibration = table.get("calibration", str)
    if method in CALIBRATED and calibration is None:
        raise ConfigError(f"{table.where}: method {method} needs a calibration set")
    if method == "rtn" and calibration is not None:
        raise ConfigError(f"{table.where}: method rtn uses no calibration set")
    ignore = table.get("ignore", list, ["lm_head"])
    if not all(isinstance(i, str) and i for i in ignore):
        raise ConfigError(f"{table.where}: ignore must be a list of module names or 're:' patterns")
    recipe = _input_file(table, "recipe", base_dir)
    return QuantizeSpec(
        scheme=scheme,
        method=method,
        calibration=_input_file(table, "calibration", base_dir),
        samples=table.positive_int("samples", 128),
        max_seq_length=table.positive_int("max_seq_length", 512),
        group_size=None if "group_size" not in table.data else table.positive_int("group_size", 1),
        ignore=tuple(ignore),
        recipe=None if recipe is None else _resolve(recipe, base_dir),
    )


def _input_file(table: _Table, key: str, base_dir: Path) -> str | None:
    """A file the recipe reads (calibration set, recipe YAML), resolved and checked to exist."""
    value = table.get(key, str)
    if value is None:
        return None
    path = _resolve(value, base_dir)
    if not Path(path).is_file():
        raise ConfigError(f"{table.where}: {key} {path}: no such file")
    return path


def _lm_eval(data: dict[str, Any] | None, base_dir: Path, where: str) -> LmEvalConfig | None:
    if data is None:
        return None
    table = _Table(data, where, LM_EVAL_KEYS)
    tasks = table.need("tasks", list)
    if not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise ConfigError(f"{where}: tasks must be a non-empty list of task names")
    include = table.get("include_path", str)
    fewshot = table.get("num_fewshot", int)
    if fewshot is not None and fewshot < 0:
        raise ConfigError(f"{where}: num_fewshot must be an integer >= 0")
    return LmEvalConfig(
        tasks=tuple(tasks),
        include_path=None if include is None else _resolve(include, base_dir),
        num_fewshot=fewshot,
        limit=None if "limit" not in data else table.positive_int("limit", 1),
        apply_chat_template=table.get("apply_chat_template", bool, False),
        fewshot_as_multiturn=table.get("fewshot_as_multiturn", bool, False),
        system_instruction=table.get("system_instruction", str),
        gen_kwargs=table.get("gen_kwargs", str),
    )


def _agreement(table: _Table, base_dir: Path) -> AgreementSettings:
    """How reference-free items are judged; the model path resolves against the config's
    folder when given, else it is where `make real-model` puts it (the working directory)."""
    model = table.get("model", str)
    threshold = table.get("threshold", (int, float), DEFAULT_EQUIVALENCE)
    if not 0 < threshold <= 1:
        raise ConfigError(f"{table.where}: threshold must be a cosine similarity in (0, 1]")
    return AgreementSettings(
        DEFAULT_EMBEDDER if model is None else _resolve(model, base_dir), float(threshold)
    )


def _generation(table: _Table) -> GenerationSettings:
    stop = table.get("stop", list, [])
    if not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"{table.where}: stop must be a list of non-empty strings")
    return GenerationSettings(
        max_new_tokens=table.positive_int("max_new_tokens", 32),
        batch_size=table.positive_int("batch_size", 32),
        stop=tuple(stop),
        distribution=table.get("distribution", bool, True),
    )


def _count(table: _Table, key: str) -> int | None:
    value = table.get(key, int)
    if value is not None and value < 0:
        raise ConfigError(f"{table.where}: {key} must be an integer >= 0")
    return None if value is None else int(value)


def _limit(table: _Table, key: str, kind: Limit) -> GateLimit | None:
    if kind is Limit.FLAG:
        flag: bool | None = table.get(key, bool)
        return flag
    if kind is Limit.COUNT:
        return _count(table, key)
    value = table.threshold(key)
    if kind is Limit.SHARE and value is not None and value > 1:
        # A share written in percent or points (2 for 2%) would let almost anything pass.
        raise ConfigError(
            f"{table.where}: {key} = {value:g} is {kind.value}; did you mean {value / 100:g}?"
        )
    return value


def _gate(table: _Table) -> GateConfig:
    """Each key is a declared gate rule (`candidate_metrics.GATE_RULES`) or `bound`."""
    bound = table.get("bound", str, "upper_ci")
    if bound not in BOUNDS:
        raise ConfigError(f"{table.where}: bound must be one of {', '.join(BOUNDS)}")
    limits = {r.key: _limit(table, r.key, r.limit) for r in GATE_RULES}
    return GateConfig({k: v for k, v in limits.items() if v is not None}, bound)


# Each interval keeps every resampled value (8 bytes) and costs samples x items work per
# slice and candidate: 10^9 resamples took 10 minutes and 23.7 GB before this bound. Past
# 100,000 resamples an interval's third digit no longer moves.
MAX_BOOTSTRAP = 100_000


def _stats(table: _Table) -> StatsConfig:
    confidence = table.get("confidence", float, 0.95)
    if not 0 < confidence < 1:
        raise ConfigError(f"{table.where}: confidence must be between 0 and 1 (exclusive)")
    samples = table.positive_int("bootstrap_samples", 2000)
    if samples > MAX_BOOTSTRAP:
        raise ConfigError(
            f"{table.where}: bootstrap_samples = {samples:,} is over {MAX_BOOTSTRAP:,}: each "
            f"interval would hold {samples * 8 / 1e9:.1f} GB of resampled values and take "
            f"{samples / 2000:,.0f} times as long as the default 2,000"
        )
    seed = table.get("seed", int, 0)
    if seed < 0:  # numpy's generators take no negative seed
        raise ConfigError(f"{table.where}: seed = {seed} must be >= 0")
    return StatsConfig(bootstrap_samples=samples, seed=seed, confidence=confidence)


def apply_overrides(
    cfg: CompareConfig, evalsets: list[str], candidates: list[str]
) -> CompareConfig:
    """`--evalset PATH` (replaces the list) and `--candidate NAME=PATH` (replaces that
    candidate's source, or adds a gated one)."""
    if evalsets:
        cfg = replace(cfg, evalsets=tuple(evalsets))
    by_name = {c.name: c for c in cfg.candidates}
    for flag in candidates:
        name, sep, path = flag.partition("=")
        if not sep or not NAME.match(name) or not path:
            raise ConfigError(f"--candidate {flag!r}: expected NAME=PATH")
        old = by_name.get(name)
        spec = ModelSpec(name=name, path=path)
        by_name[name] = CandidateSpec(name, spec, None, old.gated if old else True)
    cfg = replace(cfg, candidates=tuple(by_name.values()))
    check_names(cfg)
    return cfg
