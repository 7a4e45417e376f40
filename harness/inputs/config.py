"""The compare config (TOML): read at the edge into frozen records, against the declarations
of `harness.records.settings` (one per key: type, default, constraint, doc).

Every key is checked: an unknown key (with the nearest known one), a wrong type, a value out
of range or a missing key is a `ConfigError` naming the file and the table
(`demo.toml: [gate]: unknown key 'max_drop' (did you mean 'max_p99_kld'?)`). Relative paths
resolve against the directory of the config file. `TABLES` lists every table with its
declared keys: the configuration reference and the JSON Schema are written from it.
"""

from __future__ import annotations

import errno
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.analysis.metrics import GATE_RULES, GATE_SETTINGS
from harness.records import (
    AgreementSettings,
    CandidateSpec,
    CompareConfig,
    CorpusSettings,
    DistributionSettings,
    GateSettings,
    GenerationSettings,
    LadderSettings,
    LmEvalSettings,
    ModelSpec,
    NoiseFloorSettings,
    SequentialSettings,
    SliceSettings,
    StatsSettings,
    TrafficSettings,
    batched_floor_name,
    noise_floor_name,
)
from harness.records.errors import RecordError
from harness.records.registry import UnknownExtension
from harness.records.schema import ConfigError, Key, check, keys_of, read_table, unknown_key
from harness.records.settings import NAME_PATTERN
from harness.run.backends import ENGINES
from harness.run.quantize.quantizers import DEFAULT as DEFAULT_QUANTIZER
from harness.run.quantize.quantizers import QUANTIZERS

__all__ = [
    "DEFAULT_QUANTIZER",
    "TABLES",
    "ConfigError",
    "apply_overrides",
    "engine_settings",
    "load_config",
    "parse_config",
    "quantize_spec",
    "quantizer_settings",
]

NAME = re.compile(NAME_PATTERN)
TOP = keys_of(CompareConfig)
MODEL = keys_of(ModelSpec)
GATED = keys_of(CandidateSpec)  # `gated`
QUANTIZE = "quantize"
LADDER = keys_of(LadderSettings)


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the config file as the reference shows it."""

    name: str  # as written in the file: "[generation]", "[[candidates]]"
    keys: tuple[Key, ...]
    doc: str
    extra: tuple[str, ...] = ()  # keys declared elsewhere (an engine's, nested tables)


def _simple(record: type, name: str, doc: str) -> Table:
    return Table(f"[{name}]", keys_of(record), doc)


SIMPLE = {
    "generation": _simple(GenerationSettings, "generation", "one greedy decoding for every model"),
    "stats": _simple(StatsSettings, "stats", "the paired betting intervals"),
    "noise_floor": _simple(NoiseFloorSettings, "noise_floor", "the baseline run twice"),
    "lm_eval": _simple(LmEvalSettings, "lm_eval", "lm-evaluation-harness tasks on every model"),
    "agreement": _simple(AgreementSettings, "agreement", "how reference-free items are judged"),
    "corpus": _simple(CorpusSettings, "corpus", "perplexity and KLD over a text (`corpus`)"),
    "sequential": _simple(
        SequentialSettings, "sequential", "evaluate round by round; stop once decided"
    ),
    "slices": _simple(SliceSettings, "slices", "length buckets every report slices by"),
    "distribution": _simple(
        DistributionSettings, "distribution", "how the baseline's log-probs are kept"
    ),
    "traffic": _simple(
        TrafficSettings, "traffic", "a weighted eval set drawn from traffic (`traffic sample`)"
    ),
}
# The tables a config may hold, besides the top-level keys.
TABLE_NAMES = tuple(
    n for n in CompareConfig.__dataclass_fields__ if n not in {k.name for k in TOP} | {"path"}
)
TABLES: tuple[Table, ...] = (
    Table("top level", TOP, "the run", TABLE_NAMES),
    Table("[baseline]", MODEL, "the reference model, and its engine's own keys"),
    Table(
        "[[candidates]]",
        (*MODEL, *GATED),
        "a model compared with the baseline: `path` (a checkpoint) or `quantize` (a table "
        "of a quantize engine below, made from the baseline and cached)",
        (QUANTIZE,),
    ),
    SIMPLE["generation"],
    SIMPLE["distribution"],
    Table("[gate]", GATE_SETTINGS, "the release decision; a rule left out is off"),
    SIMPLE["stats"],
    SIMPLE["noise_floor"],
    SIMPLE["agreement"],
    SIMPLE["lm_eval"],
    SIMPLE["corpus"],
    SIMPLE["sequential"],
    SIMPLE["slices"],
    SIMPLE["traffic"],
    Table(
        "[ladder]",
        LADDER,
        "a precision ladder: `[[ladder.rungs]]` are candidate tables without `gated`",
        ("rungs",),
    ),
)


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's TOML, or a ConfigError naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(path: Path) -> CompareConfig:
    return parse_config(read_toml(path), path)


def _record(kind: Callable[..., Any], where: str, **values: Any) -> Any:
    """A record built from checked values; its own cross-field checks name the table."""
    try:
        return kind(**values)
    except RecordError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class _Reader:
    """One config file being read: where its paths resolve, how its errors start."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.base_dir = path, path.parent
        # What `traffic sample` writes counts as there: a candidate may be calibrated on the
        # calibration set the config's own [traffic] table draws.
        self.written: set[str] = set()
        traffic = data.get("traffic")
        if isinstance(traffic, dict) and isinstance(traffic.get("out"), str):
            out = Path(traffic["out"])
            out = out if out.is_absolute() else self.base_dir / out
            stem = out.name.removesuffix(".jsonl")
            self.written = {str(out), str(out.with_name(f"{stem}.calibration.jsonl"))}

    def resolve(self, where: str) -> Callable[[Key, str], str]:
        def resolve(key: Key, value: str) -> str:
            if key.path == "model":
                return _local_or_hub(value, self.base_dir, where)
            value = os.path.expanduser(value)  # `~/.cache/harness/...`, as a shell would
            path = value if Path(value).is_absolute() else str(self.base_dir / value)
            if key.path == "file" and not Path(path).is_file() and path not in self.written:
                raise ConfigError(f"{where}: {key.name} {path}: no such file")
            return path

        return resolve

    def table(self, table: Table, data: Any, where: str, extra: Sequence[str] = ()) -> Any:
        return read_table(
            table.keys, data, where, extra=(*table.extra, *extra), resolve=self.resolve(where)
        )

    def simple(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.table(SIMPLE[name], data.get(name, {}), f"{self.path}: [{name}]")

    def model(self, data: Any, where: str, extra: Sequence[str] = ()) -> ModelSpec:
        """A model table: the declared model keys, then the engine's own."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, not {type(data).__name__}")
        backend_key = next(k for k in MODEL if k.name == "backend")
        backend = check(backend_key, data.get("backend", "hf"), where)
        engine = _engine(backend, where)
        own = keys_of(engine.settings) if engine.settings is not None else ()
        owned = {k.name for k in own}
        declared = {k.name for k in MODEL} | owned | set(extra)
        for name in data:
            elsewhere = _owner(name) if name not in declared else None
            if elsewhere is not None and elsewhere != backend:
                raise ConfigError(f"{where}: {name} is a setting of backend {elsewhere!r}")
        values = read_table(MODEL, data, where, extra=(*owned, *extra), resolve=self.resolve(where))
        settings = None
        if engine.settings is not None:
            given = {k: v for k, v in data.items() if k in owned}
            settings = _record(
                engine.settings, where, **read_table(own, given, where, resolve=self.resolve(where))
            )
        return _record(ModelSpec, where, settings=settings, **values)

    def candidate(self, data: Any, where: str, gated_key: bool = True) -> CandidateSpec:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, not {type(data).__name__}")
        own = ("gated",) if gated_key else ()
        if ("path" in data) == (QUANTIZE in data):
            raise ConfigError(f"{where}: give exactly one of 'path' or 'quantize'")
        gated = read_table(GATED, {k: v for k, v in data.items() if k in own}, where)
        if QUANTIZE not in data:
            model = self.model(data, where, extra=own)
            return CandidateSpec(name=model.name, model=model, **gated)
        for name in data:
            if name not in ("name", QUANTIZE, *own):
                known = ["name", QUANTIZE, *own]
                if name in {k.name for k in MODEL} or _owner(name):
                    raise ConfigError(
                        f"{where}: {name}: a quantize candidate runs as its quantize engine "
                        "makes it; give 'path' to run a checkpoint your way"
                    )
                raise unknown_key(name, known, where)
        name = read_table(
            [k for k in MODEL if k.name == "name"],
            {"name": data["name"]} if "name" in data else {},
            where,
        )
        spec = self.quantize(data[QUANTIZE], f"{where} quantize")
        return CandidateSpec(name=name["name"], model=None, quantize=spec, **gated)

    def quantize(self, data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, not {type(data).__name__}")
        engine = data.get("engine", DEFAULT_QUANTIZER)
        if not isinstance(engine, str) or not QUANTIZERS.known(engine):
            raise ConfigError(
                f"{where}: engine must be one of {', '.join(repr(n) for n in QUANTIZERS)}"
            )
        try:
            record = QUANTIZERS.get(engine).spec
        except UnknownExtension as exc:
            raise ConfigError(f"{where}: {exc}") from None
        values = self.table(Table("quantize", keys_of(record), ""), data, where, ("engine",))
        return _record(record, where, **values)

    def ladder(self, data: Any, where: str) -> tuple[tuple[CandidateSpec, ...], LadderSettings]:
        """`[ladder]`: rungs (candidate tables without `gated`), `target`, `max_size_mb`. Only
        the target rung is gated (it alone decides the exit code through the gate); every
        rung is judged by the same gate."""
        values = read_table(LADDER, data, where, extra=("rungs",))
        raw = data.get("rungs")
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: missing [[ladder.rungs]] (a list of candidate tables)")
        rungs = [
            self.candidate(r, f"{where}: [[ladder.rungs]] #{i + 1}", gated_key=False)
            for i, r in enumerate(raw)
        ]
        settings = _record(LadderSettings, where, rungs=tuple(r.name for r in rungs), **values)
        return tuple(replace(r, gated=r.name == settings.target) for r in rungs), settings

    def gate(self, data: Any) -> GateSettings:
        """Each key is a declared gate rule (`metrics.GATE_RULES`) or `bound`."""
        where = f"{self.path}: [gate]"
        values = read_table(GATE_SETTINGS, data, where)
        rules = {r.key for r in GATE_RULES}
        limits = {k: v for k, v in values.items() if k in rules}
        return _record(GateSettings, where, limits=limits, bound=values.get("bound", "upper_ci"))


def parse_config(data: dict[str, Any], path: Path) -> CompareConfig:
    reader = _Reader(path, data)
    top = reader.table(TABLES[0], data, f"{path}")
    baseline = reader.model(_need(data, "baseline", path), f"{path}: [baseline]")
    raw_candidates = data.get("candidates", [])
    if not isinstance(raw_candidates, list):
        raise ConfigError(f"{path}: candidates must be a list of tables ([[candidates]])")
    candidates = tuple(
        reader.candidate(c, f"{path}: [[candidates]] #{i + 1}")
        for i, c in enumerate(raw_candidates)
    )
    ladder = None
    if "ladder" in data:
        if raw_candidates:
            raise ConfigError(
                f"{path}: a ladder lists its models as [[ladder.rungs]], not [[candidates]]"
            )
        candidates, ladder = reader.ladder(data["ladder"], f"{path}: [ladder]")
    lm_eval = corpus = None
    if "lm_eval" in data:
        lm_eval = _record(LmEvalSettings, f"{path}: [lm_eval]", **reader.simple("lm_eval", data))
    if "corpus" in data:
        corpus = _record(CorpusSettings, f"{path}: [corpus]", **reader.simple("corpus", data))
    sequential = None
    if "sequential" in data:
        where = f"{path}: [sequential]"
        sequential = _record(SequentialSettings, where, **reader.simple("sequential", data))
    traffic = None
    if "traffic" in data:
        where = f"{path}: [traffic]"
        traffic = _record(TrafficSettings, where, **reader.simple("traffic", data))
    floor = _record(
        NoiseFloorSettings, f"{path}: [noise_floor]", **reader.simple("noise_floor", data)
    )
    if floor.batched is not None and baseline.backend != "llama.cpp":
        raise ConfigError(
            f"{path}: [noise_floor]: batched runs a llama.cpp baseline in batches; this "
            f"baseline's backend is {baseline.backend!r}"
        )
    cfg = CompareConfig(
        name=top["name"],
        path=path,
        evalsets=top["evalsets"],
        baseline=baseline,
        candidates=candidates,
        generation=GenerationSettings(**reader.simple("generation", data)),
        gate=reader.gate(data.get("gate", {})),
        stats=StatsSettings(**reader.simple("stats", data)),
        noise_floor=floor.enabled,
        noise_floor_batched=floor.batched,
        lm_eval=lm_eval,
        agreement=_record(
            AgreementSettings, f"{path}: [agreement]", **reader.simple("agreement", data)
        ),
        corpus=corpus,
        ladder=ladder,
        sequential=sequential,
        traffic=traffic,
        slices=_record(SliceSettings, f"{path}: [slices]", **reader.simple("slices", data)),
        distribution=_record(
            DistributionSettings,
            f"{path}: [distribution]",
            **reader.simple("distribution", data),
        ),
    )
    check_names(cfg)
    if sequential is not None:
        check_sequential(cfg)
    if cfg.corpus is not None and cfg.corpus.reference is not None:
        names = [cfg.baseline.name] + [c.name for c in cfg.candidates]
        if cfg.corpus.reference not in names:
            raise ConfigError(
                f"{path}: [corpus]: reference {cfg.corpus.reference!r} names no model "
                f"(models: {', '.join(names)})"
            )
    return cfg


def check_sequential(cfg: CompareConfig) -> None:
    """A sequential run decides gated candidates on rules with an interval, judged at its
    pessimistic end: without them there is nothing to stop on."""
    where = f"{cfg.path}: [sequential]"
    # a ladder decides on every rung's verdict, gated or not
    if cfg.ladder is None and not any(c.gated for c in cfg.candidates):
        raise ConfigError(f"{where}: no candidate is gated: nothing would decide when to stop")
    if cfg.gate.bound != "upper_ci":
        raise ConfigError(
            f'{where}: needs [gate] bound = "upper_ci" (a point estimate is never decided)'
        )
    if cfg.lm_eval is not None:
        raise ConfigError(f"{where}: [lm_eval] tasks are not drawn from the pool; leave one out")
    ruled = [r.key for r in GATE_RULES if r.interval is not None and r.active(cfg.gate)]
    if not ruled:
        keys = ", ".join(r.key for r in GATE_RULES if r.interval is not None)
        raise ConfigError(f"{where}: [gate] sets no rule on an interval ({keys})")


def check_pool(cfg: CompareConfig, items: int) -> None:
    """The pool holds at least `min_items` (checked once the eval sets are read)."""
    seq = cfg.sequential
    if seq is not None and items < seq.min_items:
        raise ConfigError(
            f"{cfg.path}: [sequential]: the pool holds {items} items, fewer than "
            f"min_items {seq.min_items}"
        )


def _need(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        raise ConfigError(f"{path}: missing table [{key}]")
    return data[key]


def _engine(backend: str, where: str) -> Any:
    if not ENGINES.known(backend):
        raise ConfigError(
            f"{where}: backend must be one of {', '.join(ENGINES)}, "
            "or an import path 'package.module:Class'"
        )
    try:
        return ENGINES.get(backend)
    except UnknownExtension as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _owner(key: str) -> str | None:
    """The built-in engine whose own settings declare `key`, if one does."""
    for name in ENGINES.builtins:
        record = ENGINES.get(name).settings
        if record is not None and key in {k.name for k in keys_of(record)}:
            return name
    return None


def engine_settings() -> list[tuple[str, tuple[Key, ...]]]:
    """Built-in engines with settings of their own, and those settings (for the reference)."""
    out = []
    for name in ENGINES.builtins:
        record = ENGINES.get(name).settings
        if record is not None:
            out.append((name, keys_of(record)))
    return out


def quantize_spec(table: dict[str, Any], where: str, base_dir: Path) -> Any:
    """A `quantize` table read as a config's is (its engine's declared keys, checked; paths
    resolved from `base_dir`): what `harness quantize` makes of its flags."""
    return _Reader(base_dir / "harness quantize", {}).quantize(table, where)


def quantizer_settings() -> list[tuple[str, tuple[Key, ...], str]]:
    """Built-in quantizers: name, the keys of their `quantize` table, their record's doc."""
    out = []
    for name in QUANTIZERS.builtins:
        record = QUANTIZERS.get(name).spec
        out.append((name, keys_of(record), (record.__doc__ or "").split("\n\n")[0]))
    return out


def check_names(cfg: CompareConfig) -> None:
    """Every model has its own name (they name files), and there is something to compare."""
    names = [cfg.baseline.name] + [c.name for c in cfg.candidates]
    if cfg.noise_floor:
        names.append(noise_floor_name(cfg.baseline.name))
    if cfg.noise_floor_batched:
        names.append(batched_floor_name(cfg.baseline.name, cfg.noise_floor_batched))
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"{cfg.path}: model name {n!r} is used twice")
    if not cfg.candidates:
        raise ConfigError(f"{cfg.path}: no [[candidates]]: nothing to compare")


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
        by_name[name] = CandidateSpec(
            name=name, model=spec, quantize=None, gated=old.gated if old else True
        )
    cfg = replace(cfg, candidates=tuple(by_name.values()))
    check_names(cfg)
    return cfg
