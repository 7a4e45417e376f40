"""A baseline kept as top-k rows (`[distribution] store = "top-k"`), end to end on the demo
model: a compare killed in the baseline's generation resumes to what an uninterrupted run
gives, its KLDs are lower bounds of the full store's and say so wherever they are shown, and
top-1 agreement stays exact."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .support import helpers
from .support.paths import DEMO, REPO
from .support.results import differences, stable

K = 8  # of the demo model's 128 tokens
BATCH = 13


def config(path: Path, store: str) -> Path:
    return helpers.write_config(
        path,
        [REPO / "evalsets" / "demo" / "add.jsonl"],
        DEMO,
        {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
        {"max_weighted_accuracy_drop": 0.02, "max_mean_kld": 1.0},
        name="topk",
        generation={"max_new_tokens": 24, "batch_size": BATCH},
        baseline_name="fp32",
        distribution={"store": store, "top_k": K},
    )


def args(cfg: Path, out: Path, tmp: Path, runs: str) -> tuple[str, ...]:
    return (
        "compare",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--cache",
        str(tmp / "quantized"),
        "--run-cache",
        str(tmp / runs),
    )


def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_a_top_k_store_resumes_after_sigkill_and_every_kld_is_a_marked_lower_bound(
    tmp_path: Path,
) -> None:
    full_cfg, top_cfg = (
        config(tmp_path / "full.toml", "full"),
        config(tmp_path / "top.toml", "top-k"),
    )
    done = helpers.in_process(*args(full_cfg, tmp_path / "full", tmp_path, "runs-full"))
    assert done.returncode in (0, 1), done.stderr
    whole = helpers.in_process(*args(top_cfg, tmp_path / "whole", tmp_path, "runs-whole"))
    assert whole.returncode == done.returncode, whole.stderr
    assert f"top-{K} rows, at most" in whole.stderr and "GB on disk" in whole.stderr

    # killed (SIGKILL) after 3 of the baseline's 8 batches, then run again
    killed = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args(top_cfg, tmp_path / "run", tmp_path, "runs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"HARNESS_FAULT": "batch:fp32@3"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = helpers.in_process(*args(top_cfg, tmp_path / "run", tmp_path, "runs"))
    assert again.returncode == done.returncode, again.stderr
    assert f"fp32: resuming after {3 * BATCH} of 100 prompts (3 batches)" in again.stderr
    top = results(tmp_path / "run")
    assert differences(stable(results(tmp_path / "whole")), stable(top)) == []

    # 8k + 4 bytes per generated position were kept (the tokens the KLD is taken over,
    # plus each stop id)
    said = re.search(r"GB on disk \((\d+) bytes\) for (\d+) positions", whole.stderr)
    assert said is not None and int(said[1]) == int(said[2]) * (8 * K + 4)

    exact = results(tmp_path / "full")
    [c_top], [c_full] = top["candidates"], exact["candidates"]
    d_top, d_full = c_top["distribution"], c_full["distribution"]
    assert d_top["kld_top_k"] == K and d_full["kld_top_k"] is None
    assert d_top["top1_agreement"] == d_full["top1_agreement"]
    assert d_top["tokens"] == d_full["tokens"]
    # a lower bound, and not a vacuous one; the full store's own packing moves each log-prob
    # by up to 3e-4 nats, so a W8 candidate's tiny KLDs may come out a hair over it
    assert 0.5 * d_full["mean_kld"] < d_top["mean_kld"] <= d_full["mean_kld"] + 1e-3
    for a, b in zip(top["items"], exact["items"], strict=True):
        got, want = a["candidates"]["w8a16"]["kld_mean"], b["candidates"]["w8a16"]["kld_mean"]
        assert (got is None) == (want is None) and (got is None or got <= want + 1e-3)

    # every KLD shown says it is a bound: the verdicts table, the Markdown summary, the
    # distribution notes and each item card's data
    html = (tmp_path / "run" / "report.html").read_text()
    assert f"lower bound: top-{K} + tail" in html
    assert f"(KLDs are lower bounds: top-{K} + tail)" in html
    assert f'"kld_bound": {K}' in html
    assert "≥ " in (tmp_path / "run" / "summary.md").read_text()
    plain = (tmp_path / "full" / "report.html").read_text()
    assert "lower bound: top-" not in plain and "(KLDs are lower bounds" not in plain
