"""The configuration reference and the config's JSON Schema are written from the settings'
declarations: they must be what `make docs` writes now, and the schema must accept every
config in the repository and refuse what the reader refuses."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.analysis.candidate_metrics import GATE_RULES
from harness.inputs.config import ConfigError, parse_config
from harness.render.configuration import (
    EVALSET_BEGIN,
    json_schema,
    json_text,
    markdown,
    with_evalset_fields,
)

from .support.paths import REPO

CONFIGS = sorted([REPO / "demo.toml", REPO / "ladder.toml", *(REPO / "examples").glob("*.toml")])


def test_the_configuration_reference_is_not_stale() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == markdown(), "run `make docs`"
    assert (REPO / "docs" / "config.schema.json").read_text() == json_text(), "run `make docs`"
    page = (REPO / "docs" / "evalset-format.md").read_text()
    assert EVALSET_BEGIN in page and page == with_evalset_fields(page), "run `make docs`"


def test_the_reference_lists_every_gate_key_and_engine_setting() -> None:
    text = markdown()
    for rule in GATE_RULES:
        assert f"| `{rule.key}` |" in text and rule.doc
    for key in ("base_url", "api_key_env", "imatrix_chunks", "orders"):
        assert f"| `{key}` |" in text


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_schema_accepts_every_config_of_the_repository(validator: Any, path: Path) -> None:
    data = tomllib.loads(path.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []
    parse_config(data, path)  # and so does the reader


BASE = {
    "name": "t",
    "evalsets": ["sets/*.jsonl"],
    "baseline": {"name": "base", "path": "model"},
    "candidates": [{"name": "cand", "path": "other"}],
}


@pytest.mark.parametrize(
    "change",
    [
        {"gate": {"max_drop": 0.01}},  # unknown key
        {"gate": {"max_weighted_accuracy_drop": 2}},  # a share above 1
        {"stats": {"confidence": 1.0}},  # out of (0, 1)
        {"generation": {"max_new_tokens": 0}},
        {"name": "../x"},
        {"baseline": {"name": "base", "path": "model", "dtype": "fp8"}},
        {"baseline": {"name": "base", "path": "model", "base_url": "http://x"}},  # not openai
        {"baseline": {"name": "base", "path": "model", "backend": "openai"}},  # no base_url
        {"candidates": [{"name": "cand"}]},  # neither path nor quantize
        {"candidates": [{"name": "c", "quantize": {"scheme": "W9A16", "method": "rtn"}}]},
        {"candidates": [{"name": "c", "quantize": {"engine": "llama.cpp", "type": "Q9"}}]},
    ],
)
def test_the_schema_refuses_what_the_reader_refuses(
    validator: Any, change: dict[str, Any], tmp_path: Path
) -> None:
    data = json.loads(json.dumps(BASE)) | change
    assert list(validator.iter_errors(data)), "the schema accepted it"
    with pytest.raises(ConfigError):
        parse_config(data, tmp_path / "c.toml")
