"""Sequential evaluation: the `[sequential]` table and its refusals, the pool's seeded
order, the rounds, a sequential ladder of the demo model that stops each rung once its gate is
decided, and a sequential compare killed mid-round that resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.inputs.evalset import load_evalset
from harness.inputs.pool import pool_order
from harness.records import SequentialSettings
from harness.run.sequential import round_ends
from harness.shell.cli import main

from .support.helpers import write_config
from .support.paths import DEMO, QUANTIZED, REPO
from .support.results import differences, stable

DEMO_SETS = REPO / "evalsets" / "demo"


def config(tmp: Path, sequential: dict[str, Any], gate: dict[str, Any] | None = None) -> Path:
    return write_config(
        tmp / "seq.toml",
        [DEMO_SETS / "add.jsonl", DEMO_SETS / "count.jsonl"],
        DEMO,
        {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
        gate or {"max_weighted_accuracy_drop": 0.05},
        name="seq",
        generation={"max_new_tokens": 16, "batch_size": 50},
        sequential=sequential,
    )


def refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("sequential", "said"),
    [
        ({"min_items": 300, "max_items": 200}, "max_items 200 is below min_items 300"),
        ({"step": 0}, "step"),
        ({"min_items": 201}, "the pool holds 200 items, fewer than min_items 201"),
    ],
)
def test_bad_sequential_settings_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sequential: dict[str, Any], said: str
) -> None:
    err = refused(config(tmp_path, sequential), capsys)
    assert "seq.toml" in err and "[sequential]" in err and said in err, err


def test_sequential_needs_something_to_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ungated = write_config(
        tmp_path / "seq.toml",
        DEMO_SETS / "add.jsonl",
        DEMO,
        {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
        {"max_weighted_accuracy_drop": 0.05},
        gated=False,
        sequential={"min_items": 50},
    )
    assert "no candidate is gated" in refused(ungated, capsys)
    counts = config(tmp_path, {"min_items": 50}, gate={"max_hard_regressions": 2})
    assert "sets no rule on an interval" in refused(counts, capsys)
    point = config(
        tmp_path, {"min_items": 50}, gate={"max_weighted_accuracy_drop": 0.05, "bound": "point"}
    )
    assert 'bound = "upper_ci"' in refused(point, capsys)


def test_the_pool_order_is_seeded_and_uniform() -> None:
    """A seeded shuffle: the same seed, the same order; the hard share of every 200-item
    prefix within 4 standard errors of the pool's (a uniform order keeps the mix in
    expectation; docs/metrics.md gives the real pool's spread)."""
    items = load_evalset([str(p) for p in sorted(DEMO_SETS.glob("*.jsonl"))])
    order = pool_order(items, seed=3)
    assert sorted(i.id for i in order) == sorted(i.id for i in items)
    assert [i.id for i in order] == [i.id for i in pool_order(items, seed=3)]
    assert [i.id for i in order] != [i.id for i in pool_order(items, seed=4)]
    share = sum(i.hard for i in items) / len(items)
    k = 200
    spread = (share * (1 - share) / k * (len(items) - k) / (len(items) - 1)) ** 0.5
    assert abs(sum(i.hard for i in order[:k]) / k - share) <= 4 * spread


def test_rounds_end_at_min_items_then_every_step() -> None:
    assert round_ends(500, SequentialSettings(step=100, min_items=200)) == [200, 300, 400, 500]
    assert round_ends(450, SequentialSettings(step=100, min_items=200)) == [200, 300, 400, 450]
    assert round_ends(500, SequentialSettings(step=100, min_items=200, max_items=350)) == [
        200,
        300,
        350,
    ]
    assert round_ends(200, SequentialSettings(step=50, min_items=200)) == [200]


@pytest.mark.slow
def test_a_sequential_ladder_stops_each_rung_once_decided_and_reruns_from_the_cache(
    tmp_path: Path,
) -> None:
    """The demo model's five sets as the pool (500 items), rounds of 100 from 100, a ladder of
    W8A16 RTN and W4A16 RTN: each rung stops on its own; every rule's decision, the items each
    ran and the sequences the gate judged are in results.json; the ladder reads the rungs'
    verdicts; the report renders the shorter rung's items without a side for it; a rerun
    reads every round back from the run cache to the same results."""
    cfg = write_config(
        tmp_path / "seq.toml",
        str(DEMO_SETS / "*.jsonl"),
        DEMO,
        {},
        {"max_weighted_accuracy_drop": 0.03, "max_hard_accuracy_drop": 0.05},
        name="seq",
        generation={"max_new_tokens": 24, "batch_size": 100},
        sequential={"step": 100, "min_items": 100, "seed": 1},
        ladder={
            "rungs": [
                {"name": "w8a16", "quantize": {"scheme": "W8A16", "method": "rtn"}},
                {"name": "w4a16", "quantize": {"scheme": "W4A16", "method": "rtn"}},
            ]
        },
    )
    out = tmp_path / "run"
    args = [
        "ladder",
        "--config",
        str(cfg),
        "--cache",
        str(QUANTIZED),
        "--run-cache",
        str(tmp_path / "runs"),
    ]
    code = main([*args, "--out", str(out)])
    r = json.loads((out / "results.json").read_text())
    seq = r["sequential"]
    assert seq["items"] == 500 and 1 <= seq["rounds"] <= 5
    ends = round_ends(500, SequentialSettings(step=100, min_items=100))
    by = {c["name"]: c for c in r["candidates"]}
    assert set(by) == {"w8a16", "w4a16"}  # rungs, gated or not (no target), stop on their own
    assert len(r["items"]) == max(c["items_used"] for c in by.values())
    for name, c in by.items():
        assert c["items_used"] in ends
        rounds = c["decided_round"]
        failed = [rounds[x["rule"]] for x in c["rules"] if x["verdict"] == "fail"]
        if c["verdict"] == "pass":  # stopped at the round its last rule was decided in
            assert c["items_used"] == ends[max(rounds.values()) - 1], (name, rounds)
        elif c["verdict"] == "fail":  # or at the first that showed a loss
            assert c["items_used"] == ends[min(failed) - 1], (name, rounds)
        else:  # or ran the whole pool
            assert c["items_used"] == 500, (name, rounds)
        rows = (out / "generations" / f"{name}.jsonl").read_text().splitlines()
        assert len(rows) == c["items_used"]
        sides = [it for it in r["items"] if name in it["candidates"]]
        assert len(sides) == c["items_used"]
        drop = c["metrics"]["weighted_accuracy"]
        rule = next(x for x in c["rules"] if x["rule"] == "max_weighted_accuracy_drop")
        assert rule["verdict"] == (
            "pass" if drop["ci_high"] <= 0.03 else "fail" if drop["ci_low"] > 0.03 else "undecided"
        )
    rungs = {x["name"]: x for x in r["ladder"]["rungs"]}
    assert {n: x["verdict"] for n, x in rungs.items()} == {n: c["verdict"] for n, c in by.items()}
    passing = [n for n in ("w8a16", "w4a16") if by[n]["verdict"] == "pass"]
    assert r["ladder"]["lightest_passing"] == (passing[-1] if passing else None)
    assert code == (0 if passing else 1)
    html = (out / "report.html").read_text()
    assert "w4a16" in html and "w8a16" in html
    # every round of every model read back: the same results, nothing generated again
    assert main([*args, "--out", str(tmp_path / "again")]) == code
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert differences(stable(r), stable(again)) == []
    reused = json.loads((tmp_path / "again" / "run.json").read_text())["durations"]["reused"]
    assert reused == {"base": True, "w8a16": True, "w4a16": True}


def test_the_real_pool_regenerates_byte_for_byte_and_is_big_and_hard_enough(
    tmp_path: Path,
) -> None:
    from evalsets.build.real_pool import build

    counts = build(tmp_path)
    shipped = REPO / "evalsets" / "real-pool"
    for name in counts:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (shipped / f"{name}.jsonl").read_bytes()
    items = load_evalset([str(shipped / "*.jsonl")])
    assert len(items) == sum(counts.values()) >= 1_500
    assert sum(i.hard for i in items) >= 0.4 * len(items)
    assert all(i.reference for i in items)  # every item scored against a reference


@pytest.mark.slow
def test_a_sequential_run_killed_in_its_second_round_resumes_there(tmp_path: Path) -> None:
    """A limit of 0 never passes, so W8A16 runs every round (100 items, 50 then 50, batches
    of 25). SIGKILL as the baseline's first batch of round 2 is made; the rerun
    reads round 1 back from the run cache, resumes round 2 after its journalled batch, and
    ends with the results of a run never killed."""
    import os
    import signal
    import subprocess
    import sys

    def cfg(folder: Path) -> Path:
        folder.mkdir()
        return write_config(
            folder / "seq.toml",
            [DEMO_SETS / "count.jsonl"],
            DEMO,
            {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
            {"max_weighted_accuracy_drop": 0.0},
            name="seq",
            generation={"max_new_tokens": 16, "batch_size": 25},
            sequential={"step": 50, "min_items": 50, "seed": 2},
        )

    quantized = str(QUANTIZED)

    def args(folder: Path) -> list[str]:
        return [
            "compare",
            "--config",
            str(folder / "seq.toml"),
            "--out",
            str(folder / "run"),
            "--cache",
            quantized,
            "--run-cache",
            str(folder / "runs"),
        ]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cfg(whole), cfg(killed)
    assert main(args(whole)) == 1  # undecided: fail-closed

    def harness(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "harness.shell.cli", *args(killed)]
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, check=False, env=os.environ | env
        )

    done = harness({"HARNESS_FAULT": "batch:base@3"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not (killed / "run").exists()
    rerun = harness({})
    assert rerun.returncode == 1, rerun.stderr[-2000:]
    assert "base: resuming after 25 of 50 prompts (1 batches)" in rerun.stderr
    expected = json.loads((whole / "run" / "results.json").read_text())
    got = json.loads((killed / "run" / "results.json").read_text())
    assert [c["items_used"] for c in got["candidates"]] == [100]
    got["config"]["path"] = expected["config"]["path"]  # two folders, the same config
    assert differences(stable(expected), stable(got)) == []


def test_a_pool_file_edited_between_rounds_is_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 39: a pool file changed mid-run had results.json name the new file's sha256 while
    the run scored the old items. The pool is hashed at the start and checked each round."""
    import harness.run.sequential as seq

    pool = tmp_path / "pool.jsonl"
    pool.write_text((DEMO_SETS / "add.jsonl").read_text())
    cfg = write_config(
        tmp_path / "seq.toml",
        [pool],
        DEMO,
        {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
        {"max_weighted_accuracy_drop": 0.0001},
        name="seq",
        generation={"max_new_tokens": 8, "batch_size": 50},
        sequential={"min_items": 50, "step": 25},
    )
    real = seq.execute

    def edited_after_the_first_round(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        pool.write_text(pool.read_text().replace('"add', '"edited', 1))
        return out

    monkeypatch.setattr(seq, "execute", edited_after_the_first_round)
    code = main(["compare", "--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and f"{pool}: changed while the run read it" in err
    assert not (tmp_path / "run").exists()
