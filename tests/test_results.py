"""The typed run records: results.json and run.json read back into the classes they were
written from, and refused when they do not fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import synthetic_run
from harness.inputs.evalset import parse_item
from harness.records import Interval
from harness.records.codec import CodecError, from_json
from harness.records.errors import RecordError
from harness.records.results import Results, RunRecord
from harness.store.rundir import RunDir, RunFolderError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic") / "run"
    synthetic_run(folder, 40, candidates=2)
    return folder


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_results_json_round_trips_through_the_typed_classes(run_dir: Path) -> None:
    data = read(run_dir / "results.json")
    results = Results.from_json(data)
    assert results.to_json() == data
    cand = results.candidates[0]
    assert isinstance(cand.metrics.weighted_accuracy, Interval)
    assert isinstance(cand.metrics.regressions, int)
    assert results.items[0].candidates[cand.name].outcome in (
        "identical",
        "changed",
        "regression",
        "improvement",
    )


def test_a_metric_no_registry_declares_reads_back_by_its_shape(run_dir: Path) -> None:
    """A plug-in metric's value survives a read in a process without the plug-in: results.json
    is decoded by shape (an object an interval, an integer a count, a number a float)."""
    data = read(run_dir / "results.json")
    metrics = data["candidates"][0]["metrics"]
    metrics |= {"plugin_count": 3, "plugin_share": 0.25, "plugin_drop": metrics["hard_accuracy"]}
    cand = Results.from_json(data).candidates[0]
    assert cand.metrics["plugin_count"] == 3 and isinstance(cand.metrics["plugin_count"], int)
    assert cand.metrics["plugin_share"] == 0.25
    assert cand.metrics["plugin_drop"] == cand.metrics["hard_accuracy"]
    assert isinstance(cand.metrics["plugin_drop"], (Interval, type(None)))


def test_run_json_round_trips_and_items_pass_the_evalset_validator(run_dir: Path) -> None:
    data = read(run_dir / "run.json")
    run = RunRecord.from_json(data, parse_item)
    assert run.to_json() == data and len(run.items) == 40
    bad = data | {"items": [{"source": "x.jsonl:1", "item": {"id": "a", "prompt": ""}}]}
    with pytest.raises(CodecError, match=r"items\[0\]: prompt must be a non-empty string"):
        RunRecord.from_json(bad, parse_item)


def test_a_field_of_the_wrong_type_names_its_path(run_dir: Path) -> None:
    data = read(run_dir / "results.json")
    data["candidates"][0]["metrics"]["regressions"] = "three"
    with pytest.raises(CodecError, match=r"\$\.metrics\.regressions: expected a number, got str"):
        Results.from_json(data)
    data["candidates"][0]["metrics"]["regressions"] = True
    with pytest.raises(CodecError, match=r"\$\.metrics\.regressions: expected a number"):
        Results.from_json(data)
    with pytest.raises(CodecError, match=r"\$\.ci_low: expected a number"):
        from_json(Interval, {"baseline": 1, "candidate": 1, "drop": 0, "ci_low": "x", "ci_high": 0})


def test_another_schema_version_is_refused(run_dir: Path, tmp_path: Path) -> None:
    data = read(run_dir / "results.json") | {"schema_version": 1}
    with pytest.raises(RecordError, match="schema_version 1 is not 5"):
        Results.from_json(data)
    (tmp_path / "run.json").write_text(
        json.dumps(read(run_dir / "run.json") | {"schema_version": 1})
    )
    with pytest.raises(RunFolderError, match="schema_version 1 is not 5"):
        RunDir(tmp_path).read_run()


def test_writes_are_atomic_and_leave_no_temporary_files(run_dir: Path) -> None:
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
