"""The configuration reference (docs/configuration.md) and the config's JSON Schema
(docs/config.schema.json), both written from the declarations the config reader checks
against: a key added to a settings record appears in both, with its type, default,
constraint and doc. `make docs` writes them; tests/test_docs.py fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.inputs.canary_config import CANARY_TABLES
from harness.inputs.config import DEFAULT_QUANTIZER, TABLES, Table
from harness.inputs.config import engine_settings as _engines
from harness.inputs.config import quantizer_settings as _quantizers
from harness.records import EvalItem
from harness.records.schema import REQUIRED, json_type, keys_of, markdown_table, object_schema

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


INTRO = """\
# Configuration reference

<!-- Written by `make docs` from the declarations in harness/records/settings.py, the
engines' and quantizers' settings records and the gate rules; do not edit by hand
(tests/test_docs.py fails when this file is stale). -->

A compare config is one TOML file; how to write one for your own model is in
[compare.md](compare.md#bring-your-own-model). Every key below is checked when the config
is read (`harness validate CONFIG` prints the resolved config): an unknown key, a wrong type,
a value out of range or a missing required key stops the run with one line naming the file,
the table and the key, and the nearest known key when one is close. Relative paths resolve
against the config file's folder.

Editors validate the file as it is typed with [config.schema.json](config.schema.json)
(the same declarations as JSON Schema): with Taplo / "Even Better TOML", put
`#:schema ./docs/config.schema.json` (the path from your config) on the config's first line.
"""

GATE_NOTES = """\
Drops, shares and the top-1 agreement are shares between 0 and 1: a value above 1 is refused
with the likely meaning (`max_weighted_accuracy_drop = 2` → "did you mean 0.02?"), since
2 points written as `2` would let a candidate that lost 33 points pass. KLD limits are in
nats and may exceed 1. A value exactly at its limit passes. The KLD and top-1 rules use
point values over every generated token; with `distribution = false` they cannot be checked
and fail. Per candidate, `gated = false` reports without gating. Rules a plug-in's metric
adds are `[gate]` keys too (docs/architecture.md).
"""


def _section(table: Table) -> str:
    return f"## {table.name}\n\n{table.doc[:1].upper()}{table.doc[1:]}.\n\n" + markdown_table(
        table.keys
    )


def markdown() -> str:
    """docs/configuration.md."""
    parts = [INTRO]
    for table in TABLES:
        parts.append(_section(table))
        if table.name == "[baseline]":
            for name, keys in _engines():
                parts.append(
                    f'### Keys of `backend = "{name}"`\n\nIn the model\'s own table '
                    "(`[baseline]`, a candidate or a rung), and only with this engine.\n\n"
                    + markdown_table(keys)
                )
        if table.name == "[[candidates]]":
            for name, keys, doc in _quantizers():
                default = " (the default)" if name == DEFAULT_QUANTIZER else ""
                parts.append(
                    f'### `quantize` with `engine = "{name}"`{default}\n\n'
                    + " ".join(doc.split())
                    + "\n\n"
                    + markdown_table(keys)
                )
        if table.name == "[gate]":
            parts.append(GATE_NOTES)
    parts.append(
        "## A canary config (`harness canary`)\n\nIts own file: `name`, `[baseline]` (where "
        "shadowed requests go, any engine), `[generation]` and `[agreement]` as above, and "
        "these two tables (docs/canary.md)."
    )
    parts += [_section(table) for table in CANARY_TABLES[1:]]
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def _model_properties() -> dict[str, Any]:
    model = next(t for t in TABLES if t.name == "[baseline]")
    props = {k.name: json_type(k) for k in model.keys}
    for _, keys in _engines():
        props |= {k.name: json_type(k) for k in keys}
    return props


def _engine_rules() -> list[dict[str, Any]]:
    """An engine's required keys are required with that engine, refused with the others."""
    rules = []
    for name, keys in _engines():
        with_it = {"properties": {"backend": {"const": name}}, "required": ["backend"]}
        required = [k.name for k in keys if k.default is REQUIRED]
        rules.append(
            {
                "if": with_it,
                "then": {"required": required} if required else {},
                "else": {"not": {"anyOf": [{"required": [k.name]} for k in keys]}},
            }
        )
    return rules


def json_schema() -> dict[str, Any]:
    """docs/config.schema.json (JSON Schema 2020-12)."""
    by_name = {t.name: t for t in TABLES}
    quantize = []
    for name, keys, doc in _quantizers():
        engine = {"const": name, "description": "the quantize engine"}
        schema = object_schema(keys, " ".join(doc.split()), {"engine": engine})
        if name != DEFAULT_QUANTIZER:
            schema["required"] = [*schema.get("required", []), "engine"]
        quantize.append(schema)
    gated = {k.name: json_type(k) for k in by_name["[[candidates]]"].keys if k.name == "gated"}

    def candidate(with_gated: bool) -> dict[str, Any]:
        props = _model_properties() | {"quantize": {"anyOf": quantize}}
        if with_gated:
            props |= gated
        return {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
            "required": ["name"],
            "oneOf": [{"required": ["path"]}, {"required": ["quantize"]}],
            "allOf": _engine_rules(),
        }

    top = by_name["top level"]
    simple = {
        t.name.strip("[]"): object_schema(t.keys, t.doc)
        for t in TABLES
        if t.name.startswith("[") and not t.name.startswith("[[") and t.name != "[baseline]"
    }
    ladder = simple.pop("ladder")
    ladder["properties"]["rungs"] = {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/rung"},
        "description": "the ladder's models, heaviest first",
    }
    ladder["required"] = ["rungs"]
    return {
        "$schema": SCHEMA_URL,
        "title": "harness compare config",
        "description": INTRO.split("\n\n")[2].replace("\n", " "),
        "type": "object",
        "properties": {k.name: json_type(k) for k in top.keys}
        | {
            "baseline": {
                "type": "object",
                "description": by_name["[baseline]"].doc,
                "properties": _model_properties(),
                "additionalProperties": False,
                "required": ["name", "path"],
                "allOf": _engine_rules(),
            },
            "candidates": {"type": "array", "items": {"$ref": "#/$defs/candidate"}},
            "ladder": ladder,
        }
        | simple,
        "additionalProperties": False,
        "required": [k.name for k in top.keys if k.default is REQUIRED] + ["baseline"],
        "$defs": {"candidate": candidate(True), "rung": candidate(False)},
    }


def json_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


EVALSET_BEGIN = "<!-- fields: written by `make docs` from EvalItem's declarations -->"
EVALSET_END = "<!-- fields: end -->"


def evalset_fields() -> str:
    """The eval-set format's field table (docs/evalset-format.md, between its markers)."""
    return markdown_table(keys_of(EvalItem)).replace("| key |", "| field |", 1)


def with_evalset_fields(page: str) -> str:
    """The eval-set format page with its field table as the declarations say."""
    head, _, rest = page.partition(EVALSET_BEGIN)
    _, _, tail = rest.partition(EVALSET_END)
    return f"{head}{EVALSET_BEGIN}\n{evalset_fields()}\n{EVALSET_END}{tail}"


def write_docs(folder: Path) -> None:
    """`make docs`: the configuration reference, the JSON Schema and the eval-set fields."""
    (folder / "configuration.md").write_text(markdown())
    (folder / "config.schema.json").write_text(json_text())
    page = folder / "evalset-format.md"
    page.write_text(with_evalset_fields(page.read_text()))


if __name__ == "__main__":
    write_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
