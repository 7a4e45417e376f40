"""How the baseline's log-probs are kept (`[distribution]`), end to end on the demo model.
Top-k rows (`store = "top-k"`): a compare killed in the baseline's generation resumes to what
an uninterrupted run gives, its KLDs are lower bounds of the full store's and say so wherever
they are shown, top-1 agreement stays exact. No store (`mode = "lockstep"`): the same KLDs
as the full store's, to its packing."""

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


def config(path: Path, store: str, mode: str = "stored") -> Path:
    return helpers.write_config(
        path,
        [REPO / "evalsets" / "demo" / "add.jsonl"],
        DEMO,
        {"w8a16": {"quantize": {"scheme": "W8A16", "method": "rtn"}}},
        {"max_weighted_accuracy_drop": 0.02, "max_mean_kld": 1.0},
        name="topk",
        generation={"max_new_tokens": 24, "batch_size": BATCH},
        baseline_name="fp32",
        distribution={"store": store, "top_k": K, "mode": mode},
    )


def args(cfg: Path, out: Path, tmp: Path, runs: str) -> tuple[str, ...]:
    return helpers.run_args(cfg, out, tmp / "quantized", tmp / runs)


def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The full store's run: its folder and exit code."""
    tmp = tmp_path_factory.mktemp("full")
    done = helpers.in_process(*args(config(tmp / "full.toml", "full"), tmp / "run", tmp, "runs"))
    assert done.returncode in (0, 1), done.stderr
    return tmp / "run", done.returncode


@pytest.mark.slow
def test_a_top_k_store_resumes_after_sigkill_and_every_kld_is_a_marked_lower_bound(
    full: tuple[Path, int], tmp_path: Path
) -> None:
    top_cfg = config(tmp_path / "top.toml", "top-k")
    full_out, code = full
    whole = helpers.in_process(*args(top_cfg, tmp_path / "whole", tmp_path, "runs-whole"))
    assert whole.returncode == code, whole.stderr
    assert f"top-{K} rows, at most" in whole.stderr and "GB on disk" in whole.stderr

    # killed (SIGKILL) after 3 of the baseline's 8 batches, then run again
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.shell.cli",
            *args(top_cfg, tmp_path / "run", tmp_path, "runs"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"HARNESS_FAULT": "batch:fp32@3"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = helpers.in_process(*args(top_cfg, tmp_path / "run", tmp_path, "runs"))
    assert again.returncode == code, again.stderr
    assert f"fp32: resuming after {3 * BATCH} of 100 prompts (3 batches)" in again.stderr
    top = results(tmp_path / "run")
    assert differences(stable(results(tmp_path / "whole")), stable(top)) == []

    # 8k + 4 bytes per generated position were kept (the tokens the KLD is taken over,
    # plus each stop id)
    said = re.search(r"GB on disk \((\d+) bytes\) for (\d+) positions", whole.stderr)
    assert said is not None and int(said[1]) == int(said[2]) * (8 * K + 4)

    exact = results(full_out)
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
    plain = (full_out / "report.html").read_text()
    assert "lower bound: top-" not in plain and "(KLDs are lower bounds" not in plain


@pytest.mark.slow
def test_lockstep_gives_the_full_stores_klds_with_nothing_stored(
    full: tuple[Path, int], tmp_path: Path
) -> None:
    full_out, code = full
    cfg = config(tmp_path / "lock.toml", "full", mode="lockstep")
    done = helpers.in_process(*args(cfg, tmp_path / "run", tmp_path, "runs"))
    assert done.returncode == code, done.stderr
    assert "lockstep: needs at most" in done.stderr and "baseline log-probs:" not in done.stderr
    assert not list(tmp_path.rglob("baseline-logprobs.*"))
    got, want = results(tmp_path / "run"), results(full_out)
    [c_got], [c_want] = got["candidates"], want["candidates"]
    d_got, d_want = c_got["distribution"], c_want["distribution"]
    assert d_got["kld_top_k"] is None and d_got["tokens"] == d_want["tokens"]
    assert d_got["top1_agreement"] == d_want["top1_agreement"]
    # the full store's packing moves each log-prob by up to 3e-4 nats: its KLDs are exact to
    # well under 1e-3; lockstep's to float rounding
    assert d_got["mean_kld"] == pytest.approx(d_want["mean_kld"], abs=1e-4)
    for a, b in zip(got["items"], want["items"], strict=True):
        x, y = a["candidates"]["w8a16"]["kld_mean"], b["candidates"]["w8a16"]["kld_mean"]
        assert (x is None) == (y is None) and (x is None or abs(x - y) < 1e-3)


def test_lockstep_is_refused_with_the_numbers_when_it_cannot_fit() -> None:
    from harness.run.lockstep import GIB, LockstepRefused, Need, check_fits

    n = Need(baseline=GIB, candidate=GIB, rows=GIB // 2)
    check_fits(n, 3 * GIB)
    with pytest.raises(LockstepRefused) as got:
        check_fits(n, 2 * GIB)
    assert (
        "needs baseline 1.00 GiB + candidate 1.00 GiB + a batch's rows 0.50 GiB = 2.50 GiB, "
        "and 2.00 GiB is available"
    ) in str(got.value)


@pytest.mark.slow
def test_a_ladder_on_a_top_k_store_marks_each_rungs_kld_a_bound(tmp_path: Path) -> None:
    """Two rungs on the demo model with the baseline kept as top-8 rows: each rung's mean
    KLD is a bound in ladder.json, and the ladder's tables say so."""
    cfg = helpers.write_config(
        tmp_path / "ladder.toml",
        [REPO / "evalsets" / "demo" / "add.jsonl"],
        DEMO,
        {},
        {"max_weighted_accuracy_drop": 0.02},
        name="ladder",
        generation={"max_new_tokens": 12, "batch_size": 50},
        baseline_name="fp32",
        distribution={"store": "top-k", "top_k": K},
        ladder={
            "rungs": [
                {"name": "w8a16", "quantize": {"scheme": "W8A16", "method": "rtn"}},
                {"name": "w4a16", "quantize": {"scheme": "W4A16", "method": "rtn"}},
            ]
        },
    )
    out = tmp_path / "run"
    done = helpers.in_process(
        *helpers.run_args(cfg, out, tmp_path / "quantized", tmp_path / "runs", "ladder")
    )
    assert done.returncode in (0, 1), done.stderr
    rungs = results(out)["ladder"]["rungs"]
    assert [r["kld_top_k"] for r in rungs] == [K, K]
    assert all(r["mean_kld"] > 0 for r in rungs)
    summary = (out / "summary.md").read_text()
    assert summary.count("| ≥ ") >= 2  # the ladder's mean KLD column, once per rung
    html = (out / "report.html").read_text()
    assert html.count(f"lower bound: top-{K} + tail") >= 2


def test_lockstep_sizes_chat_items_too() -> None:
    """Chat items (messages, not a prompt) were not JSON-serialisable in the estimate."""
    from harness.records import EvalItem, Message, ModelSpec, Role, Source
    from harness.run.lockstep import TEMPLATE_PER_MESSAGE, need

    chat = EvalItem(
        id="c",
        source=Source("t.jsonl", 1),
        messages=(Message(role=Role.USER, content="x" * 100),),
        reference=("r",),
    )
    spec = ModelSpec(name="base", path=str(DEMO))
    got = need(spec, [spec], [chat], batch_size=2, max_new_tokens=8)
    vocab = json.loads((DEMO / "config.json").read_text())["vocab_size"]
    longest = len("user") + 100 + TEMPLATE_PER_MESSAGE
    assert got.rows == 2 * (longest + 8) * vocab * 4 * 2 + 2 * 8 * vocab * 8 * 2
