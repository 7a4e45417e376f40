"""`backend = "replay"`: a candidate whose outputs are a log's answers. A log written from a
model's own run replays to that run's outputs, id for id and cut-off for cut-off (the demo
model here; SmolLM2's Q8_0 GGUF on llama.cpp, through `traffic import`, in the engine test);
no log-probs, so its distribution metrics are n/a; a prompt the log does not hold is exit 2
naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .support.helpers import in_process, write_config, write_jsonl
from .support.paths import DEMO, MINILM, NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, REAL, REPO, SMOLLM

QUANTIZED = REPO / ".cache" / "harness" / "quantized"


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
    replay = {"backend": "replay", "path": DEMO, "log": log}
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
    first = json.loads((direct / "results.json").read_text())["candidates"][0]["metrics"]
    for key in ("weighted_accuracy", "regressions", "improvements"):
        assert cand["metrics"][key] == first[key]

    # a prompt the log does not hold: exit 2, naming the log
    write_jsonl(evalset, [*rows, {**rows[0], "id": "other", "prompt": "add 1+1="}])
    cfg.write_text(cfg.read_text().replace(str(log), str(evalset), 1))
    done = in_process("compare", "--config", str(cfg), "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2
    assert "no logged answer in" in done.stderr and str(log) in done.stderr


@pytest.mark.real
@pytest.mark.engine
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
def test_a_llama_cpp_q8_0_log_replays_to_the_ggufs_own_outputs(tmp_path: Path) -> None:
    """SmolLM2's Q8_0 GGUF runs chat items directly; its answers, written as an OpenAI
    chat-completions log and read by `traffic import`, replay to the same ids and stops."""
    rows = [json.loads(x) for x in (REAL / "open-ended.jsonl").read_text().splitlines()][:12]
    rows += [json.loads(x) for x in (REAL / "arithmetic.jsonl").read_text().splitlines()][:12]
    rows = list({r["messages"][-1]["content"]: r for r in rows}.values())  # one "4 + 1" twice
    for row in rows:
        row.pop("max_new_tokens", None)
    evalset = write_jsonl(tmp_path / "items.jsonl", rows)
    q8 = {"quantize": {"engine": "llama.cpp", "type": "Q8_0"}}
    gen = {"max_new_tokens": 48, "batch_size": 24}
    agreement = {"model": MINILM}
    cfg = write_config(
        tmp_path / "direct.toml",
        evalset,
        SMOLLM,
        {"q8_0": q8},
        {},
        generation=gen,
        agreement=agreement,
    )
    args = ["--cache", str(QUANTIZED), "--run-cache", str(tmp_path / "runs")]
    direct = tmp_path / "direct"
    done = in_process("compare", "--config", str(cfg), "--out", str(direct), *args)
    assert done.returncode in (0, 1), done.stderr
    served = generations(direct, "q8_0")
    log = tmp_path / "served.jsonl"
    write_jsonl(
        log,
        [
            {
                "request": {"model": "smollm2-q8_0", "messages": r["messages"], "max_tokens": 48},
                "response": {
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": g["output"]},
                            "finish_reason": "length" if g["cut_off"] else "stop",
                        }
                    ],
                },
            }
            for r, g in zip(rows, served, strict=True)
        ],
    )
    imported = tmp_path / "traffic.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(imported))
    assert done.returncode == 0, done.stderr
    items = [json.loads(x) for x in imported.read_text().splitlines()]
    assert len(items) == len(rows)
    replay = {"backend": "replay", "path": SMOLLM, "log": imported}
    cfg = write_config(
        tmp_path / "replay.toml",
        imported,
        SMOLLM,
        {"served": replay},
        {},
        generation=gen,
        agreement=agreement,
    )
    out = tmp_path / "replayed"
    done = in_process("compare", "--config", str(cfg), "--out", str(out), *args)
    assert done.returncode in (0, 1), done.stderr
    # the import wrote the items in the log's order, with ids of its own: match by conversation
    by_prompt = {json.dumps(r["messages"]): g for r, g in zip(rows, served, strict=True)}
    replayed = generations(out, "served")
    direct_in_order = [by_prompt[json.dumps(it["messages"])] | {"id": it["id"]} for it in items]
    replayed_equals_direct(direct_in_order, replayed)
