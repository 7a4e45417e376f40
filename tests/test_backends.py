"""The engine table: keys, import paths, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records import ModelSpec
from harness.run.backends import UnknownBackend, engine_class, open_backend
from harness.run.backends.hf import HFBackend
from harness.shell.cli import main

from .support.helpers import write_config, write_jsonl


def test_keys_and_import_paths_name_the_same_engine() -> None:
    assert engine_class("hf") is engine_class("harness.run.backends.hf:HFBackend") is HFBackend


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown backend 'nope'"),
        ("no_such_module:Engine", "cannot be imported"),
        ("harness.records:ModelSpec", "is not a harness.run.backends.Backend subclass"),
    ],
)
def test_what_is_not_an_engine_is_refused(name: str, message: str) -> None:
    with pytest.raises(UnknownBackend, match=message):
        open_backend(ModelSpec(name="m", path="x", backend=name))


def test_a_candidate_on_an_engine_named_by_import_path(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The same checkpoint through the table key and through the import path: the same
    outputs, so the candidate is identical to the baseline item for item."""
    rows = [{"id": f"i{n}", "prompt": f"add {n}+1=", "reference": str(n + 1)} for n in range(6)]
    items = write_jsonl(tmp_path / "s.jsonl", rows)
    cfg = write_config(
        tmp_path / "c.toml",
        items,
        tiny_model_dir,
        {"cand": tiny_model_dir},
        "max_hard_regressions = 0",
    )
    text = cfg.read_text().replace(
        'name = "cand"', 'name = "cand"\nbackend = "harness.run.backends.hf:HFBackend"'
    )
    cfg.write_text(text)
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (
        results["config"]["candidates"][0]["model"]["backend"]
        == "harness.run.backends.hf:HFBackend"
    )
    assert results["candidates"][0]["metrics"]["identical_share"] == 1.0
