"""The configuration reference and the config's JSON Schema are written from the settings'
declarations: they must be what `make docs` writes now, and the schema must accept every
config in the repository and refuse what the reader refuses."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.analysis.metrics import GATE_RULES
from harness.inputs.config import ConfigError, parse_config
from harness.render.configuration import (
    EVALSET_BEGIN,
    json_schema,
    json_text,
    markdown,
    with_evalset_fields,
)

from .support.paths import NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, REPO

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
def test_the_schema_accepts_every_config_of_the_repository(
    validator: Any, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tomllib.loads(path.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []
    monkeypatch.chdir(tmp_path)  # from an empty folder: every path resolves from the config's
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


def toml_blocks(page: Path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", page.read_text(), re.S)


@NEEDS_REAL_MODEL
def test_the_traffic_example_resolves_from_any_folder(tmp_path: Path, monkeypatch: Any) -> None:
    """docs/traffic.md's config, copied into an empty folder beside a pool of one's own and
    run from another folder: every path it names resolves (the baseline in the harness home,
    where `make real-model` puts it; the pool and the files it writes beside the config; the
    [agreement] model's default in the harness home), and `validate` says ok."""
    from harness.inputs.config import load_config
    from harness.shell.cli import main

    folder, elsewhere = tmp_path / "mine", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    config = folder / "traffic.toml"
    config.write_text(toml_blocks(REPO / "docs" / "traffic.md")[0])
    pool = (REPO / "evalsets" / "real-pool" / "sequences.jsonl").read_text()
    (folder / "traffic.jsonl").write_text(pool)
    (folder / "sample.jsonl").write_text(pool)  # what `traffic sample` would write
    monkeypatch.chdir(elsewhere)
    cfg = load_config(config)
    assert Path(cfg.baseline.path).is_dir() and Path(cfg.agreement.model).is_dir()
    assert cfg.traffic is not None and Path(cfg.traffic.pool).parent == folder
    assert main(["validate", str(config)]) == 0


@pytest.mark.real
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
def test_an_example_config_runs_from_an_empty_folder(tmp_path: Path) -> None:
    """`harness compare --config <repo>/examples/smollm2-code.toml --limit 1` from an empty
    folder (its llama.cpp candidates quantize in seconds): no path error; the llama.cpp
    build, the quantized files and the run cache are the harness home's, and the folder
    holds the report only. Partial: exit 1."""
    from .support.helpers import console_script

    config = REPO / "examples" / "smollm2-code.toml"
    done = console_script("compare", "--config", str(config), "--limit", "1", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "A partial run (--limit 1: 1 of 14 items" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert (tmp_path / "reports" / "smollm2-code" / "report.html").is_file()
