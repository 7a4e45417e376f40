"""`backend = "replay"`: a candidate whose outputs are a log's answers. A log written from a
model's own run replays to that run's outputs, id for id and cut-off for cut-off (the demo
model; SmolLM2's Q8_0 GGUF on llama.cpp, through `traffic import`, next to the GGUF run
directly in the same compare); no log-probs, so its distribution metrics are n/a; a prompt
the log does not hold is exit 2 naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.run.backends.base import GenerateRequest

from .support.helpers import in_process, write_config, write_jsonl
from .support.paths import (
    DEMO,
    MINILM,
    NEEDS_LLAMA_CPP,
    NEEDS_REAL_MODEL,
    QUANTIZED,
    REAL,
    REPO,
    SMOLLM,
)


def generations(run: Path, model: str) -> list[dict[str, Any]]:
    lines = (run / "generations" / f"{model}.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def replayed_equals_direct(direct: list[dict[str, Any]], replayed: list[dict[str, Any]]) -> None:
    assert [g["id"] for g in replayed] == [g["id"] for g in direct]
    for d, r in zip(direct, replayed, strict=True):
        assert (r["output"], r["output_ids"], r["cut_off"]) == (
            d["output"],
            d["output_ids"],
            d["cut_off"],
        ), d["id"]


def test_a_log_of_a_run_replays_to_that_runs_outputs(tmp_path: Path) -> None:
    rows = [json.loads(x) for x in (REPO / "evalsets/demo/add.jsonl").read_text().splitlines()]
    rows = rows[:24]
    evalset = write_jsonl(tmp_path / "items.jsonl", rows)
    w4 = {"quantize": {"scheme": "W4A16", "method": "rtn", "group_size": 32}}
    short = {"max_new_tokens": 3, "batch_size": 8}  # some answers are cut off at 3 tokens
    cfg = write_config(
        tmp_path / "direct.toml",
        evalset,
        DEMO,
        {"w4": w4},
        {"max_weighted_accuracy_drop": 1},
        generation=short,
    )
    direct = tmp_path / "direct"
    args = ["--cache", str(QUANTIZED), "--run-cache", str(tmp_path / "runs")]
    done = in_process("compare", "--config", str(cfg), "--out", str(direct), *args)
    assert done.returncode in (0, 1), done.stderr
    served = generations(direct, "w4")
    assert any(g["cut_off"] for g in served) and not all(g["cut_off"] for g in served)
    log = write_jsonl(
        tmp_path / "log.jsonl",
        [r | {"logged_output": g["output"]} for r, g in zip(rows, served, strict=True)],
    )
    replay = {"backend": "replay", "path": DEMO, "log": "log.jsonl"}  # beside the config
    cfg = write_config(
        tmp_path / "replay.toml",
        log,
        DEMO,
        {"served": replay},
        {"max_weighted_accuracy_drop": 1},
        generation=short,
    )
    out = tmp_path / "replayed"
    done = in_process("compare", "--config", str(cfg), "--out", str(out), *args)
    assert done.returncode in (0, 1), done.stderr
    replayed_equals_direct(served, generations(out, "served"))
    results = json.loads((out / "results.json").read_text())
    cand = results["candidates"][0]
    assert cand["backend"] == "replay" and cand["distribution"] is None
    assert cand["metrics"]["mean_kld"] is None
    assert "served" not in results["durations"]["tokens_per_second"]  # a file read, no speed
    first = json.loads((direct / "results.json").read_text())["candidates"][0]["metrics"]
    for key in ("weighted_accuracy", "regressions", "improvements"):
        assert cand["metrics"][key] == first[key]

    # a prompt the log does not hold: exit 2 before any model runs, naming file, line and id
    write_jsonl(evalset, [*rows, {**rows[0], "id": "other", "prompt": "add 1+1="}])
    cfg.write_text(cfg.read_text().replace(str(log), str(evalset), 1))  # the eval set only
    done = in_process("compare", "--config", str(cfg), "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2
    assert f"{evalset}:25: id 'other': model 'served' has no logged answer" in done.stderr
    assert "1 of 25 items have none" in done.stderr
    assert "batch" not in done.stderr  # nothing generated: the baseline never ran


@pytest.mark.real
@pytest.mark.engine
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
def test_a_llama_cpp_q8_0_log_replays_to_the_ggufs_own_outputs(
    smollm2_ggufs: dict[str, Any], tmp_path: Path
) -> None:
    """SmolLM2's Q8_0 GGUF answers 10 chat items on llama.cpp; the answers, written as an
    OpenAI chat-completions log, go through `traffic import`; one compare then runs the GGUF
    directly and replays the log, on the same prompts: the same ids and the same stops."""
    from harness.inputs.evalset import load_evalset
    from harness.records import ModelSpec
    from harness.run.backends import open_backend

    rows = [json.loads(x) for name in ("open-ended", "instructions") for x in
            (REAL / f"{name}.jsonl").read_text().splitlines()[:5]]  # fmt: skip
    for row in rows:
        row["max_new_tokens"] = 32  # some answers end on their own, some are cut off
    evalset = write_jsonl(tmp_path / "items.jsonl", rows)
    gguf = smollm2_ggufs["first"]["q8_0"].path.resolve()
    items = load_evalset([str(evalset)])
    spec = ModelSpec(name="q8_0", path=str(gguf), backend="llama.cpp", threads=2)
    with open_backend(spec) as engine:
        ids = [engine.prompt_ids(i) for i in items]
        done_rows = [
            g
            for b in engine.generate(GenerateRequest(ids, [32] * len(ids), engine.stop_ids, 8))
            for g in b
        ]
        answers = {g.index: (engine.decode(g.ids), g.stop_id is None) for g in done_rows}
    assert {cut for _, cut in answers.values()} == {True, False}
    log = tmp_path / "served.jsonl"
    write_jsonl(
        log,
        [
            {
                "request": {"model": "smollm2-q8_0", "messages": r["messages"], "max_tokens": 32},
                "response": {
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answers[k][0]},
                            "finish_reason": "length" if answers[k][1] else "stop",
                        }
                    ],
                },
            }
            for k, r in enumerate(rows)
        ],
    )
    imported = tmp_path / "traffic.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(imported))
    assert done.returncode == 0, done.stderr
    assert len(imported.read_text().splitlines()) == len(rows)
    replay = {"backend": "replay", "path": SMOLLM, "log": imported}
    cfg = write_config(
        tmp_path / "replay.toml",
        imported,
        SMOLLM,
        {"q8_0": {"path": gguf, "backend": "llama.cpp"}, "served": replay},
        {},
        generation={"max_new_tokens": 32, "batch_size": 16},
        agreement={"model": MINILM},
    )
    out = tmp_path / "run"
    args = ["--run-cache", str(tmp_path / "runs")]
    done = in_process("compare", "--config", str(cfg), "--out", str(out), *args)
    assert done.returncode in (0, 1), done.stderr
    replayed_equals_direct(generations(out, "q8_0"), generations(out, "served"))
    results = json.loads((out / "results.json").read_text())
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["served"]["distribution"] is None and by_name["q8_0"]["distribution"]
    for key in ("free_identical", "free_equivalent", "free_diverged"):
        assert by_name["served"]["metrics"][key] == by_name["q8_0"]["metrics"][key]


@NEEDS_REAL_MODEL
@pytest.mark.real
def test_a_logged_answer_holding_the_end_of_turn_ends_there(tmp_path: Path) -> None:
    """SmolLM2's `<|im_end|>` written mid-answer (a served model that ran on past its turn,
    logged whole): what counts is what was served up to the stop, as for a generation."""
    from harness.records import ModelSpec
    from harness.run.backends.replay import ReplayBackend, ReplaySettings

    row = {
        "id": "q",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "reference": "Paris",
        "logged_output": "Paris.<|im_end|>\n<|im_start|>user\nAnd Spain?",
    }
    log = write_jsonl(tmp_path / "log.jsonl", [row])
    spec = ModelSpec(
        name="served", path=str(SMOLLM), backend="replay", settings=ReplaySettings(log=str(log))
    )
    with ReplayBackend(spec) as replay:
        from harness.inputs.evalset import load_evalset

        [item] = load_evalset([str(log)])
        stop = replay.encode("<|im_end|>")[0]  # SmolLM2's end of turn, a special token
        [[got]] = list(replay.generate(GenerateRequest([replay.prompt_ids(item)], [32], [stop], 1)))
    assert got.stop_id == stop
    assert replay.decode(list(got.ids)) == "Paris."


def test_an_unanswered_item_is_refused_in_seconds_before_any_tokenizer(tmp_path: Path) -> None:
    """Issue 35's acceptance: a replayed set holding a request without its logged answer is
    exit 2 in under 5 s (1.8 s measured on 2 cores), naming the id, before any model or
    tokenizer loads (the check reads the log as an eval set)."""
    import time

    from .support.helpers import console_script

    rows = [
        json.loads(x) for x in (REPO / "evalsets" / "demo" / "add.jsonl").read_text().splitlines()
    ]
    rows = rows[:30]
    for i, row in enumerate(rows):
        if i != 17:
            row["logged_output"] = row["reference"]
    sets = write_jsonl(tmp_path / "set.jsonl", rows)
    served = {"backend": "replay", "path": str(DEMO), "log": str(sets)}
    cfg = write_config(tmp_path / "c.toml", sets, DEMO, {"served": served}, "max_mean_kld = 0.5")
    started = time.monotonic()
    done = console_script("compare", "--config", str(cfg), "--out", str(tmp_path / "o"))
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert f"{sets}:18: id 'add-common-017': model 'served' has no logged answer" in done.stderr
    assert seconds < 5, seconds
    assert "%|" not in done.stderr  # no progress bar: nothing ran
