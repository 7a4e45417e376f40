"""Sets without references, as a team replaying its own traffic has them: judged by their
answers and meaning, with a full report; gate rules they cannot feed refused at once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .support.helpers import in_process, write_config, write_jsonl
from .support.paths import DEMO, MINILM, NEEDS_REAL_MODEL, REPO

FREEFORM = REPO / "evalsets" / "freeform" / "freeform.jsonl"


def config(path: Path, evalset: Path, gate: str, candidate: dict[str, Any] | None = None) -> Path:
    return write_config(
        path,
        evalset,
        DEMO,
        {"cand": candidate or {"path": DEMO}},
        gate,
        name="free",
        generation={"max_new_tokens": 12, "batch_size": 64},
        stats={},
        baseline_name="fp32",
        agreement={"model": MINILM},
    )


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return in_process(*args)


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        (
            "max_weighted_accuracy_drop = 0.02",
            "no item is scored against a reference (every item is reference-free)",
        ),
        ("max_hard_accuracy_drop = 0.03", "no hard item is scored against a reference"),
        (
            "max_weighted_regression_share = 0.05",
            "no item is scored against a reference (every item is reference-free)",
        ),
    ],
)
def test_a_rule_the_set_cannot_feed_exits_2_before_any_model_loads(
    tmp_path: Path, rule: str, why: str
) -> None:
    cfg = config(tmp_path / "c.toml", FREEFORM, rule)
    started = time.monotonic()
    done = harness(
        "compare",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "run"),
        "--cache",
        str(tmp_path / "q"),
        "--run-cache",
        str(tmp_path / "r"),
    )
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    key = rule.split(" = ")[0]
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: gate rule {key} cannot be computed on this eval set: {why}; remove the rule or "
        "add items it can judge"
    )
    assert seconds < 10, seconds
    # nothing made: no run folder, no run cache, no quantized checkpoint, no progress bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    assert "fp32:" not in done.stderr


@pytest.mark.slow
@NEEDS_REAL_MODEL
def test_a_reference_free_set_alone_gets_a_full_report_and_a_verdict(tmp_path: Path) -> None:
    """The demo's additions without their references, each tagged `answer:number`, the
    demo against its own bf16 copy: shares, KLD and top-1, flips n/a, a verdict on the
    reference-free and distribution rules."""
    rows = [json.loads(x) for x in (REPO / "evalsets/demo/add.jsonl").read_text().splitlines()]
    free = [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "scorer": "agreement",
            "difficulty": r["difficulty"],
            "tags": ["add", "answer:number"],
        }
        for r in rows
    ]
    evalset = write_jsonl(tmp_path / "free.jsonl", free)
    gate = "max_diverged_share = 0.5\nmax_mean_kld = 0.05\nmin_top1_agreement = 0.9"
    cfg = config(tmp_path / "c.toml", evalset, gate, {"path": DEMO, "dtype": "bfloat16"})
    done = harness(
        "compare",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "run"),
        "--cache",
        str(tmp_path / "q"),
        "--run-cache",
        str(tmp_path / "r"),
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    [cand] = results["candidates"]
    m = cand["metrics"]
    assert m["reference_free"] == len(free) and m["scored"] == 0
    assert m["free_identical"] + m["free_equivalent"] + m["free_diverged"] == len(free)
    assert m["weighted_accuracy"] is None and m["regressions"] is None and m["mcnemar_p"] is None
    assert m["mean_kld"] is not None and m["top1_agreement"] is not None
    assert [r["rule"] for r in cand["rules"]] == [
        "max_diverged_share",
        "max_mean_kld",
        "min_top1_agreement",
    ]
    changes = [it["candidates"]["cand"]["answer_change"] for it in results["items"]]
    assert m["answer_changes"] == sum(c is not None for c in changes)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "identical / equivalent / diverged" in html
    # the metrics table shows the columns a reference-free set has, not a row of n/a
    table = html[html.index('<table class="metrics">') :]
    table = table[: table.index("</table>")]
    assert ">n/a" not in table and "weighted acc." not in table and "mean KLD" in table
    assert "Weight of regressions by tag" not in html and "Flips per slice" not in html
