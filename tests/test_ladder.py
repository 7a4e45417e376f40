"""The precision ladder: its pure analysis by hand, its config, and whole ladders of the demo
model through real llm-compressor and llama.cpp rungs (the run cache, a rung added, a
SIGKILL in the middle of a rung, the Pareto chart in Chromium)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.analysis.ladder import answer, breaks_first, calibration_pairs, cliffs, decide, pareto
from harness.commands.sensitivity import LayerCost, propose
from harness.inputs.config import ConfigError, parse_config
from harness.records import CandidateMetrics, GgufSpec, Interval, QuantizeSpec
from harness.records.ladder import Rung, RungSlice
from harness.records.results import CandidateInfo, CandidateResult
from harness.records.review import ReviewStatus
from harness.records.settings import GateVerdict
from harness.shell.cli import main

from .support.helpers import run_args, write_config
from .support.paths import NEEDS_LLAMA_CPP, REPO
from .test_browser import CHROMIUM, Page, browser  # noqa: F401  (browser: a fixture)


def iv(drop: float, low: float, high: float) -> Interval:
    return Interval(0.8, 0.8 - drop, drop, low, high)


def rung(
    name: str,
    size: int,
    drop: Interval | None,
    verdict: GateVerdict = "fail",
    slices: tuple[RungSlice, ...] = (),
) -> Rung:
    return Rung(
        name=name,
        recipe="recipe",
        size_bytes=size,
        bits_per_weight=size * 8 / 1000,
        smaller=4000 / size,
        speedup=1.5,
        verdict=verdict,
        drop=drop,
        mean_kld=0.01,
        pareto=False,
        slices=slices,
    )


# --- the analysis, by hand ------------------------------------------------------------------


def test_pareto_keeps_rungs_no_other_beats_on_size_and_drop() -> None:
    rungs = [
        rung("a", 1000, iv(0.00, -0.01, 0.01)),  # heaviest, no damage: on the front
        rung("b", 800, iv(0.02, 0.00, 0.04)),  # lighter, more damage: on the front
        rung("c", 800, iv(0.03, 0.01, 0.05)),  # same size as b, more damage: beaten by b
        rung("d", 900, iv(0.05, 0.02, 0.08)),  # heavier than b and worse: beaten
        rung("e", 500, iv(0.10, 0.05, 0.15)),  # lightest: on the front
        rung("f", 400, None),  # no drop measured: never on it
    ]
    assert pareto(rungs) == {"a", "b", "e"}


def test_a_cliff_is_a_doubling_beyond_the_interval() -> None:
    rungs = [
        rung("w8", 1000, iv(0.004, -0.005, 0.013)),
        # 0.004 -> 0.010: more than doubled, but the interval starts at 0.002 < 0.004: noise
        rung("w6", 800, iv(0.010, 0.002, 0.018)),
        # 0.010 -> 0.030 with the interval from 0.015 > 0.010: a cliff
        rung("w4", 600, iv(0.030, 0.015, 0.045)),
        # 0.030 -> 0.050: less than double: no cliff
        rung("w3", 500, iv(0.050, 0.030, 0.070)),
    ]
    [found] = cliffs(rungs, ["all"])
    assert (found.heavier, found.lighter, found.before, found.after) == ("w6", "w4", 0.01, 0.03)
    # A heavier rung that improved (negative drop) counts as 0: any significant drop is one.
    two = [rung("x", 900, iv(-0.01, -0.03, 0.01)), rung("y", 800, iv(0.005, 0.001, 0.009))]
    assert [(c.heavier, c.lighter) for c in cliffs(two, ["all"])] == [("x", "y")]


def test_rungs_of_one_size_are_not_a_step_down() -> None:
    rungs = [
        rung("q6", 100_000, iv(0.00, -0.01, 0.01)),
        rung("q5-imatrix", 80_000, iv(-0.01, -0.03, 0.01)),
        # the same size (within 0.1%) as q5-imatrix: compared with q6, the next heavier size
        rung("q5", 79_950, iv(0.11, 0.06, 0.16)),
        # the step from that size starts at the least damaged rung there: q5-imatrix (0 -> 0.02)
        rung("q4", 70_000, iv(0.02, 0.005, 0.04)),
    ]
    found = [(c.heavier, c.lighter) for c in cliffs(rungs, ["all"])]
    assert found == [("q6", "q5"), ("q5-imatrix", "q4")]


def calibrated(name: str, spec: QuantizeSpec | GgufSpec) -> CandidateResult:
    info = CandidateInfo(
        name=name,
        path="p",
        fingerprint="f",
        gated=False,
        quantize=spec,
        calibration_sha256=None,
        noise_floor=False,
    )
    return CandidateResult(
        info=info,
        verdict="pass",
        reasons=(),
        rules=(),
        metrics=CandidateMetrics(values={}),
        review=ReviewStatus(0, 0, 0, 0, 0, 0),
    )


def test_calibration_pairs_differ_only_in_their_calibration() -> None:
    gptq = QuantizeSpec(scheme="W4A16", method="gptq", calibration="traffic.jsonl", group_size=32)
    cands = [
        calibrated("gptq-traffic", gptq),
        calibrated("gptq-generic", replace(gptq, calibration="generic.jsonl")),
        calibrated("gptq-g128", replace(gptq, group_size=128)),  # another recipe: alone
        calibrated("q5", GgufSpec(type="Q5_K_M")),
        calibrated("q5-chat", GgufSpec(type="Q5_K_M", imatrix="chat.jsonl", imatrix_context=128)),
        calibrated("rtn", QuantizeSpec(scheme="W4A16", method="rtn")),
        calibrated(
            "rtn-again", QuantizeSpec(scheme="W4A16", method="rtn")
        ),  # same recipe, same (no) set
    ]
    pairs = calibration_pairs(cands)
    assert [(p.rungs, p.calibrations) for p in pairs] == [
        (("gptq-traffic", "gptq-generic"), ("traffic.jsonl", "generic.jsonl")),
        (("q5", "q5-chat"), ("none", "chat.jsonl")),
    ]


def test_slices_break_first_at_the_heaviest_rung_with_a_significant_drop() -> None:
    hard = "difficulty=hard"
    rungs = [
        rung(
            "r1",
            1000,
            iv(0.0, -0.01, 0.01),
            slices=(
                RungSlice(slice=hard, drop=iv(0.02, 0.005, 0.04)),
                RungSlice(slice="tag=x", drop=iv(0.0, -0.1, 0.1)),
            ),
        ),
        rung(
            "r2",
            500,
            iv(0.02, 0.01, 0.03),
            slices=(
                RungSlice(slice=hard, drop=iv(0.05, 0.02, 0.08)),
                RungSlice(slice="tag=x", drop=iv(0.01, -0.1, 0.1)),
            ),
        ),
    ]
    assert breaks_first(rungs, ["all", hard, "tag=x"]) == [
        (hard, "r1"),
        ("all", "r2"),
        ("tag=x", None),
    ]


def test_release_decisions() -> None:
    rungs = [
        rung("big", 4000, iv(0, 0, 0), "pass"),
        rung("mid", 2000, iv(0, 0, 0), "pass"),
        rung("small", 1000, iv(0.1, 0.05, 0.15), "fail"),
    ]
    assert decide(rungs, None, None) == (
        "pass",
        "2 of 3 rung(s) pass in sequence from the heaviest",
    )
    assert decide(rungs, "small", None)[0] == "fail"
    assert decide(rungs, "mid", None) == ("pass", "the target rung mid passes the gate")
    # sizes in MB of 10^6 bytes: 2000 bytes = 0.002 MB
    assert decide(rungs, None, 0.002) == ("pass", "passing rungs of at most 0.002 MB: mid")
    assert decide(rungs, None, 0.0019)[0] == "fail"
    assert decide(rungs, "mid", 0.0019)[0] == "fail"  # both must hold
    assert decide([rungs[2]], None, None) == (
        "fail",
        "0 of 1 rung(s) pass in sequence from the heaviest",
    )


def test_the_release_sequence_stops_at_the_first_rung_that_does_not_pass() -> None:
    """Fixed-sequence testing: a lighter rung that passes on its own is not reached past a
    heavier one that does not pass, so K rungs give one chance at a wrong pass, not K."""
    rungs = [
        rung("big", 4000, iv(0, 0, 0), "pass"),
        rung("mid", 2000, iv(0.01, -0.01, 0.03), "undecided"),
        rung("small", 1000, iv(0, 0, 0), "pass"),
    ]
    verdict, reason = decide(rungs, None, 0.001)
    assert verdict == "undecided"
    assert "the sequence stopped at mid (undecided): small pass on their own" in reason
    assert decide(rungs, None, None)[0] == "pass"  # big is reached
    failing = [rungs[0], replace(rungs[1], verdict="fail"), rungs[2]]
    assert decide(failing, None, 0.001)[0] == "fail"  # nothing lighter is tested


def test_the_answer_names_the_lightest_passing_rung_with_its_figures() -> None:
    rungs = [rung("big", 4000, iv(0, 0, 0), "pass"), rung("mid", 2000, iv(0, 0, 0), "pass")]
    text = answer(rungs, "mid", {})
    assert text == (
        "The lightest rung that passes the gate, tested in sequence from the heaviest, is "
        "mid (recipe): 16.00 bits per "
        "weight, 2.0x smaller than the baseline, 1.50x its tokens per second here"
    )
    assert answer(rungs, None, {"big": ["it lost 9 points"]}) == (
        "No rung passes the gate; even the heaviest, big, fails: it lost 9 points"
    )


# --- the config -----------------------------------------------------------------------------


def ladder_config(**ladder: Any) -> dict[str, Any]:
    rungs = [
        {"name": "w8", "quantize": {"scheme": "W8A16", "method": "rtn"}},
        {"name": "q4", "quantize": {"engine": "llama.cpp", "type": "Q4_0"}},
    ]
    return {
        "name": "l",
        "evalsets": ["x.jsonl"],
        "baseline": {"name": "b", "path": "m"},
        "ladder": {"rungs": rungs, **ladder},
    }


def test_ladder_config_gates_only_the_target() -> None:
    cfg = parse_config(ladder_config(target="q4", max_size_mb=3), Path("/c/l.toml"))
    assert cfg.ladder is not None and cfg.ladder.rungs == ("w8", "q4")
    assert (cfg.ladder.target, cfg.ladder.max_size_mb) == ("q4", 3.0)
    assert [(c.name, c.gated) for c in cfg.candidates] == [("w8", False), ("q4", True)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, "target 'nope' names no rung"),
        ({"max_size_mb": 0}, "max_size_mb = 0 must be a number > 0"),
        ({"rungs": []}, "at least one rung"),
        ({"colour": 1}, "unknown key 'colour'"),
    ],
)
def test_bad_ladder_tables_are_refused(change: dict[str, Any], message: str) -> None:
    data = ladder_config()
    data["ladder"] |= change
    with pytest.raises(ConfigError, match=message):
        parse_config(data, Path("/c/l.toml"))


def test_a_ladder_lists_rungs_not_candidates() -> None:
    data = ladder_config() | {"candidates": [{"name": "c", "path": "m"}]}
    with pytest.raises(ConfigError, match=r"\[\[ladder.rungs\]\], not \[\[candidates\]\]"):
        parse_config(data, Path("/c/l.toml"))
    rung = ladder_config()
    rung["ladder"]["rungs"][0]["gated"] = True
    with pytest.raises(ConfigError, match="unknown key 'gated'"):
        parse_config(rung, Path("/c/l.toml"))


# --- whole ladders of the demo model --------------------------------------------------------

RUNGS: dict[str, dict[str, Any]] = {
    "w8a16": {"scheme": "W8A16", "method": "rtn"},
    "w4a16-g48": {"scheme": "W4A16", "method": "rtn", "group_size": 48},  # divides no layer
    "gptq-missing": {"scheme": "W8A16", "method": "gptq", "calibration": "/nowhere.jsonl"},
    "gguf-q8_0": {"engine": "llama.cpp", "type": "Q8_0"},
    "w4a16-rtn": {"scheme": "W4A16", "method": "rtn"},
    "gguf-q4_0": {"engine": "llama.cpp", "type": "Q4_0"},
}


def write_ladder(path: Path, rungs: list[str], **decision: Any) -> Path:
    """The demo model's ladder of `rungs`; `decision`: target or max_size_mb."""
    return write_config(
        path,
        f"{REPO}/evalsets/demo/*.jsonl",
        REPO / "demo" / "model",
        {},
        {"max_weighted_accuracy_drop": 0.02, "max_hard_accuracy_drop": 0.03},
        name="ladder",
        generation={"max_new_tokens": 24, "batch_size": 64},
        stats={},
        baseline_name="fp32",
        ladder={**decision, "rungs": [{"name": n, "quantize": RUNGS[n]} for n in rungs]},
    )


def ladder_args(cfg: Path, out: Path, quantized: Path, runs: Path) -> list[str]:
    return list(run_args(cfg, out, quantized, runs, "ladder"))


def stable(results: dict[str, Any]) -> dict[str, Any]:
    """results.json minus what differs between two runs of the same inputs: the timestamp,
    the durations, and the speed ratios and the sentence quoting them (tokens per second
    come from durations)."""
    data = {k: v for k, v in results.items() if k not in ("created_at", "durations")}
    data["config"] = {k: v for k, v in data["config"].items() if k != "path"}  # the file's place
    ladder = dict(data["ladder"])
    ladder["rungs"] = [{k: v for k, v in r.items() if k != "speedup"} for r in ladder["rungs"]]
    ladder["answer"] = ladder["answer"].split(" bits per weight")[0]
    data["ladder"] = ladder
    return data


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    ("last", "env", "message"),
    [
        ("w4a16-g48", {}, "candidate 'w4a16-g48': quantizing"),
        ("gptq-missing", {}, "#2 quantize: calibration /nowhere.jsonl: no such file"),
        (
            "gguf-q8_0",
            {"HARNESS_LLAMA_CPP": "/nowhere"},
            "(llama.cpp)): /nowhere/bin/llama-quantize not found: run `make llama-cpp`",
        ),
    ],
)
def test_a_ladder_whose_last_rung_cannot_be_made_exits_2_before_any_rung_is_made(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    last: str,
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = write_ladder(tmp_path / "ladder.toml", ["w8a16", last])
    quantized = tmp_path / "quantized"
    started = time.monotonic()
    assert main(ladder_args(cfg, tmp_path / "run", quantized, tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err
    assert not quantized.exists() and not (tmp_path / "run").exists()  # nothing made
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "rung",
    ["w4a16-g48"],
)
def test_group_sizes_are_said_with_the_ones_that_divide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rung: str
) -> None:
    cfg = write_ladder(tmp_path / "ladder.toml", [rung])
    assert main(ladder_args(cfg, tmp_path / "run", tmp_path / "q", tmp_path / "r")) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        "groups of 48 do not divide" in last
        and "group sizes that divide every layer: 128, 64, 32, 16, 8" in last
    ), last


@pytest.fixture(scope="module")
def demo_ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three rungs (two llm-compressor schemes, a GGUF), run once, uninterrupted."""
    tmp = tmp_path_factory.mktemp("ladder")
    cfg = write_ladder(tmp / "ladder.toml", ["w8a16", "gguf-q8_0", "w4a16-rtn"])
    out = tmp / "run"
    assert main(ladder_args(cfg, out, tmp / "quantized", tmp / "runs")) in (0, 1)
    return out


@pytest.mark.slow
@NEEDS_LLAMA_CPP
def test_a_ladder_run_names_its_rungs_and_generates_the_baseline_once(demo_ladder: Path) -> None:
    run = read(demo_ladder / "run.json")
    assert run["durations"]["reused"] == {
        "fp32": False,
        "w8a16": False,
        "gguf-q8_0": False,
        "w4a16-rtn": False,
    }
    results = read(demo_ladder / "results.json")
    ladder = results["ladder"]
    assert [r["name"] for r in ladder["rungs"]] == ["w8a16", "gguf-q8_0", "w4a16-rtn"]
    by_name = {c["name"]: c for c in results["candidates"]}
    for r in ladder["rungs"]:
        c = by_name[r["name"]]
        assert r["verdict"] == c["verdict"] and r["drop"] == c["metrics"]["weighted_accuracy"]
        assert r["size_bytes"] == c["size_bytes"] > 0
        assert r["bits_per_weight"] == pytest.approx(
            c["size_bytes"] * 8 / results["baseline"]["parameters"]
        )
    passing = [r["name"] for r in ladder["rungs"] if r["verdict"] == "pass"]
    assert ladder["lightest_passing"] == (passing[-1] if passing else None)
    junit = (demo_ladder / "junit.xml").read_text()
    assert all(f'classname="ladder" name="{n}"' in junit for n in by_name)
    assert 'classname="ladder" name="release"' in junit
    assert "## Ladder" in (demo_ladder / "summary.md").read_text()


@pytest.mark.slow
@NEEDS_LLAMA_CPP
def test_adding_a_rung_runs_only_that_rung(demo_ladder: Path, tmp_path: Path) -> None:
    runs, out, quantized = tmp_path / "runs", tmp_path / "run", demo_ladder.parent / "quantized"
    first = write_ladder(tmp_path / "a.toml", ["w8a16", "gguf-q8_0"])
    main(ladder_args(first, out, quantized, runs))
    entries = {p.name: (p / "entry.json").stat().st_mtime_ns for p in runs.iterdir()}
    before = read(out / "results.json")
    second = write_ladder(tmp_path / "a.toml", ["w8a16", "gguf-q8_0", "gguf-q4_0"])
    main(ladder_args(second, out, quantized, runs))
    d = read(out / "run.json")["durations"]
    assert d["reused"] == {"fp32": True, "w8a16": True, "gguf-q8_0": True, "gguf-q4_0": False}
    assert d["generation_seconds"]["fp32"] == d["generation_seconds"]["w8a16"] == 0.0
    assert d["generation_seconds"]["gguf-q4_0"] > 0
    # the earlier entries were read, not rewritten; one entry was added
    assert {
        p.name: (p / "entry.json").stat().st_mtime_ns for p in runs.iterdir() if p.name in entries
    } == entries
    assert len(list(runs.iterdir())) == len(entries) + 1
    after = read(out / "results.json")
    for name in ("w8a16", "gguf-q8_0"):
        old = next(c for c in before["candidates"] if c["name"] == name)
        new = next(c for c in after["candidates"] if c["name"] == name)
        assert new["metrics"] == old["metrics"]


@pytest.mark.slow
@NEEDS_LLAMA_CPP
def test_sigkill_in_the_middle_of_a_rung_then_rerun_gives_the_same_results(
    demo_ladder: Path, tmp_path: Path
) -> None:
    cfg = write_ladder(tmp_path / "ladder.toml", ["w8a16", "gguf-q8_0", "w4a16-rtn"])
    runs, out, quantized = tmp_path / "runs", tmp_path / "run", demo_ladder.parent / "quantized"
    cmd = [sys.executable, "-m", "harness.shell.cli", *ladder_args(cfg, out, quantized, runs)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_in = None
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        folders = list(runs.iterdir()) if runs.is_dir() else []
        # entries in place (a work folder holds its entry.json a moment before it is renamed
        # into place, and is not done then)
        done = [p for p in folders if not p.name.startswith(".") and (p / "entry.json").is_file()]
        building = [p for p in folders if p.name.startswith(".work-") and p.is_dir()]
        # the baseline and the first rung are done, the second rung is being generated
        if len(done) >= 2 and building:
            os.kill(proc.pid, signal.SIGKILL)
            killed_in = building[0].name
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_in is not None, "the run ended before it could be killed mid-rung"
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert main(ladder_args(cfg, out, quantized, runs)) in (0, 1)
    d = read(out / "run.json")["durations"]["reused"]
    assert d["fp32"] and d["w8a16"] and not d["w4a16-rtn"]
    # nothing left behind: no half-built entry, no staging folder
    assert (
        not list(runs.glob(".work-*"))
        and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    )
    assert stable(read(out / "results.json")) == stable(read(demo_ladder / "results.json"))


IN_VIEW = "document.getElementById('review').getBoundingClientRect().top < innerHeight"


@pytest.mark.slow
@pytest.mark.browser
@NEEDS_LLAMA_CPP
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_the_pareto_chart_renders_links_and_matches_results(
    demo_ladder: Path,
    browser: Any,  # noqa: F811  (the fixture of test_browser)
) -> None:
    results = read(demo_ladder / "results.json")
    rungs = {r["name"]: r for r in results["ladder"]["rungs"]}
    p = Page(browser, (demo_ladder / "report.html").as_uri())
    assert p.errors == []
    assert p.page.inner_text("#ladder-answer").startswith(results["ladder"]["answer"])
    drop = p.page.locator("figure.scatter[data-kind='drop'][data-slice='all'] circle.rung")
    assert drop.count() == len(rungs)
    for i in range(drop.count()):
        point = drop.nth(i)
        r = rungs[point.get_attribute("data-rung")]
        assert float(point.get_attribute("data-x")) == pytest.approx(r["bits_per_weight"], 1e-5)
        for attr, key in (
            ("data-drop", "drop"),
            ("data-ci-low", "ci_low"),
            ("data-ci-high", "ci_high"),
        ):
            assert float(point.get_attribute(attr)) == pytest.approx(r["drop"][key], 1e-5)
        assert r["verdict"] in point.get_attribute("class")
        box = point.bounding_box()
        assert box is not None and box["width"] > 0  # drawn, not just in the markup
    kld = p.page.locator("figure.scatter[data-kind='kld'] circle.rung")
    for i in range(kld.count()):
        point = kld.nth(i)
        r = rungs[point.get_attribute("data-rung")]
        assert float(point.get_attribute("data-kld")) == pytest.approx(r["mean_kld"], 1e-5)
    # a point opens that rung's review queue
    target = drop.nth(drop.count() - 1)
    name = target.get_attribute("data-rung")
    assert not p.page.evaluate(IN_VIEW)  # the queue is far below the ladder
    target.click()
    p.page.wait_for_function(f"location.hash.includes('cand={name}')")
    assert p.page.input_value("#f-cand") == name
    # ... and scrolls to it: the queue's heading is in view
    p.page.wait_for_function(
        "document.getElementById('review').getBoundingClientRect().top < innerHeight"
    )


@pytest.mark.slow
@NEEDS_LLAMA_CPP
def test_the_release_decision_is_the_exit_code(demo_ladder: Path, tmp_path: Path) -> None:
    """Rerun from the demo ladder's caches (nothing generates) with each kind of decision."""
    results = read(demo_ladder / "results.json")
    rungs = results["ladder"]["rungs"]
    passing = [r for r in rungs if r["verdict"] == "pass"]
    failing = [r for r in rungs if r["verdict"] != "pass"]
    assert passing and failing, "the demo ladder should have a passing and a failing rung"
    names = [r["name"] for r in rungs]
    caches = (demo_ladder.parent / "quantized", demo_ladder.parent / "runs")

    def code(**decision: Any) -> int:
        cfg = write_ladder(tmp_path / "d.toml", names, **decision)
        return main(ladder_args(cfg, tmp_path / "run", *caches))

    assert code(target=passing[0]["name"]) == 0
    assert code(target=failing[0]["name"]) == 1
    lightest_pass = min(r["size_bytes"] for r in passing)
    assert code(max_size_mb=lightest_pass / 1e6) == 0
    assert code(max_size_mb=(lightest_pass - 1) / 1e6) == 1
    junit = (tmp_path / "run" / "junit.xml").read_text()
    assert '<testcase classname="ladder" name="release">\n    <failure' in junit
    assert read(tmp_path / "run" / "run.json")["durations"]["reused"]["fp32"] is True


def test_ladder_needs_a_ladder_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'name = "x"\nevalsets = ["x.jsonl"]\n[baseline]\nname = "b"\npath = "m"\n'
        '[[candidates]]\nname = "c"\npath = "m"\n'
    )
    assert main(["ladder", "--config", str(cfg)]) == 2
    assert "no [ladder] table" in capsys.readouterr().err


def test_the_proposal_keeps_the_costliest_layers_until_half_the_cost() -> None:
    costs = [LayerCost(f"model.layers.{i}", c, 10) for i, c in enumerate((0.3, 0.1, 0.5, 0.1))]
    # total 1.0: layer 2 alone carries 0.5, half of it
    assert propose(costs) == ["model.layers.2"]
    costs[2] = LayerCost("model.layers.2", 0.4, 10)  # total 0.9: 0.4 < 0.45, then 0.7
    assert propose(costs) == ["model.layers.2", "model.layers.0"]
    assert propose(costs, keep=3) == ["model.layers.2", "model.layers.0", "model.layers.1"]


@pytest.mark.slow
@NEEDS_LLAMA_CPP
def test_sensitivity_proposes_a_mixed_rung_that_the_ladder_then_runs(
    demo_ladder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caches = (demo_ladder.parent / "quantized", demo_ladder.parent / "runs")
    names = ["w8a16", "gguf-q8_0", "w4a16-rtn"]
    cfg = write_ladder(tmp_path / "ladder.toml", names)
    sens = tmp_path / "sens"
    args = [
        "sensitivity",
        "--config",
        str(cfg),
        "--rung",
        "w4a16-rtn",
        "--out",
        str(sens),
        "--cache",
        str(caches[0]),
        "--run-cache",
        str(caches[1]),
    ]
    assert main(args) == 0
    found = read(sens / "sensitivity.json")
    assert [r["layer"] for r in found["layers"]] == [f"model.layers.{i}" for i in range(4)]
    assert all(r["mean_kld"] > 0 and r["tokens"] > 0 for r in found["layers"])
    assert found["keep"] and found["kept_share"] >= 0.5
    # the proposed rung, added to the ladder: only it runs
    cfg.write_text(cfg.read_text() + "\n" + found["toml"])
    out = tmp_path / "run"
    main(ladder_args(cfg, out, *caches))
    reused = read(out / "run.json")["durations"]["reused"]
    assert reused == {"fp32": True, **dict.fromkeys(names, True), found["proposed_name"]: False}
    rungs = {r["name"]: r for r in read(out / "results.json")["ladder"]["rungs"]}
    mixed, w4, w8 = rungs[found["proposed_name"]], rungs["w4a16-rtn"], rungs["w8a16"]
    # one layer in 8 bits: heavier than the 4-bit rung, lighter than the 8-bit one, and it
    # moves the distribution less than the 4-bit rung
    assert w4["size_bytes"] < mixed["size_bytes"] < w8["size_bytes"]
    assert mixed["mean_kld"] < w4["mean_kld"]
