"""Read a canary config (`harness canary --config FILE`): `name`, `[baseline]` (where shadowed
requests go: any engine), `[canary]`, `[guardrails]`, and the compare config's
`[generation]` and `[agreement]`. Errors name the file and the table, as a compare config's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.inputs.config import SIMPLE, Table, _need, _Reader, _record, read_toml
from harness.records import AgreementSettings, GenerationSettings
from harness.records.canary import CanaryConfig, CanarySettings, GuardrailLimits
from harness.records.schema import ConfigError, keys_of

CANARY_TABLES = (
    Table("top level", tuple(k for k in keys_of(CanaryConfig)), "the canary"),
    Table("[canary]", keys_of(CanarySettings), "the live split a canary watches"),
    Table("[guardrails]", keys_of(GuardrailLimits), "each guardrail's limit"),
)
TOP = {"name", "baseline", "canary", "guardrails", "generation", "agreement"}


def load_canary_config(path: Path) -> CanaryConfig:
    return parse_canary_config(read_toml(path), path)


def parse_canary_config(data: dict[str, Any], path: Path) -> CanaryConfig:
    for key in data:
        if key not in TOP:
            raise ConfigError(f"{path}: unknown key {key!r} (a canary config holds {sorted(TOP)})")
    reader = _Reader(path, data)
    name = _need(data, "name", path)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: name must be a non-empty string")
    where = f"{path}: [canary]"
    canary = _record(
        CanarySettings, where, **reader.table(CANARY_TABLES[1], _need(data, "canary", path), where)
    )
    where = f"{path}: [guardrails]"
    limits = _record(
        GuardrailLimits, where, **reader.table(CANARY_TABLES[2], data.get("guardrails", {}), where)
    )
    return CanaryConfig(
        name=name,
        path=path,
        baseline=reader.model(_need(data, "baseline", path), f"{path}: [baseline]"),
        canary=canary,
        guardrails=limits,
        generation=GenerationSettings(**reader.simple("generation", data)),
        agreement=_record(
            AgreementSettings, f"{path}: [agreement]", **reader.simple("agreement", data)
        ),
    )


__all__ = ["CANARY_TABLES", "SIMPLE", "load_canary_config", "parse_canary_config"]
