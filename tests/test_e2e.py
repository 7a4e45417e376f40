"""The slow end-to-end test: the committed demo model through a real GPTQ quantization,
compared on every demo item, with all artifacts written and re-rendered from disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.shell.cli import main

from .support.helpers import write_config
from .support.paths import REPO


@pytest.mark.slow
def test_demo_model_through_gptq_compare_and_report(tmp_path: Path) -> None:
    calibration = REPO / "data" / "calibration" / "traffic.jsonl"
    gptq = {"scheme": "W4A16", "method": "gptq", "calibration": str(calibration)}
    cfg = write_config(
        tmp_path / "e2e.toml",
        f"{REPO / 'evalsets' / 'demo'}/*.jsonl",
        REPO / "demo" / "model",
        {"w4a16-gptq": {"quantize": gptq}},
        {"max_weighted_accuracy_drop": 0.05},
        name="e2e",
        generation={"max_new_tokens": 24, "batch_size": 64},
        stats={},
        baseline_name="fp32",
    )
    run = tmp_path / "run"
    code = main(
        ["compare", "--config", str(cfg), "--out", str(run), "--cache", str(tmp_path / "cache")]
    )
    results = json.loads((run / "results.json").read_text())
    [cand] = results["candidates"]
    assert code == (0 if cand["verdict"] == "pass" else 1)
    assert len(results["items"]) == 500
    assert cand["quantize"]["calibration"] == str(calibration)
    m = cand["metrics"]
    # The fp32 baseline is the committed model: its accuracy is what the demo test bounds.
    assert m["weighted_accuracy"]["baseline"] > 0.5
    assert m["scored"] == 500 and 0.0 <= m["identical_share"] <= 1.0
    html = (run / "report.html").read_text()
    assert "calibrated on" in html and "traffic.jsonl" in html
    assert main(["report", str(run)]) == code
