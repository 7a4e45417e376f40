"""lm-eval interop: tasks in a compare, paired per sample; our eval sets exported as tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.records import LmEvalSettings, ModelSpec
from harness.run.backends import open_backend
from harness.run.lmeval import (
    LmEvalError,
    export_tasks,
    mc_task_yaml,
    run_tasks,
    task_manager,
)
from harness.shell.cli import main
from harness.store.rundir import RunDir

from .support.helpers import write_config
from .support.paths import REPO


def tasks_dir(tmp_path: Path) -> Path:
    """A generate_until task (exported from an eval set) and a multiple_choice task."""
    src = tmp_path / "gen.jsonl"
    rows = [
        {
            "id": f"g{i}",
            "prompt": f"add {i}+{i}=",
            "reference": str(2 * i),
            "difficulty": "hard" if i % 3 == 0 else "common",
        }
        for i in range(12)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "tasks"
    export_tasks([str(src)], out, max_gen_toks=4)
    mc = [
        {"prompt": f"sort {w}=", "choices": [w, "".join(sorted(w)), w[::-1]], "label": 1}
        for w in ("cba", "dca", "zyx", "qpa", "mlk", "tsr", "fed", "hgi")
    ]
    (out / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    (out / "mc.yaml").write_text(mc_task_yaml("harness_test_mc", str(out / "mc.jsonl")))
    return out


def right(score: float | None) -> bool:
    return score is not None and score >= 0.5


def test_tasks_in_a_compare_are_paired_per_sample(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    out = tasks_dir(tmp_path)
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "prompt": "add 1+1=", "reference": "2"}) + "\n")
    lm_eval = f'[lm_eval]\ntasks = ["harness_gen", "harness_test_mc"]\ninclude_path = "{out}"\n'
    cfg = write_config(
        tmp_path / "c.toml",
        items,
        tiny_model_dir,
        {"cand": other_model_dir},
        "max_hard_regressions = 1000",
        name="lm",
        extra=lm_eval,
    )
    run = tmp_path / "run"
    assert main(["compare", "--config", str(cfg), "--out", str(run)]) == 0
    base = RunDir(run).read_samples("base")
    cand = RunDir(run).read_samples("cand")
    # every doc once per model, both models on the same docs
    for samples in (base, cand):
        keys = [s.key for s in samples]
        assert len(keys) == len(set(keys)) == 12 + 8
    assert [s.key for s in base] == [s.key for s in cand]
    mc = [s for s in base if s.task == "harness_test_mc"]
    assert all(len(s.choices) == 3 and len(s.loglikelihoods) == 3 for s in mc)
    assert all(s.target == "".join(sorted(s.prompt[5:-1])) for s in mc)
    hard = {s.key for s in base if s.difficulty == "hard"}
    assert len(hard) == 4 and {s.weight for s in base if s.key in hard} == {3.0}
    assert all(s.weight is None for s in mc)  # the doc has no weight: the default applies

    # regressions, improvements and McNemar by hand, over every paired item
    r: Any = json.loads((run / "results.json").read_text())
    scores = [(it["baseline"]["score"], it["candidates"]["cand"]["score"]) for it in r["items"]]
    assert len(scores) == 1 + 20
    by_key = {f"lm_eval/{s.key}": s for s in base}
    for it in r["items"][1:]:
        assert it["baseline"]["score"] == by_key[it["id"]].score
    regressions = sum(right(b) and not right(c) for b, c in scores)
    improvements = sum(right(c) and not right(b) for b, c in scores)
    m = r["candidates"][0]["metrics"]
    assert (m["regressions"], m["improvements"]) == (regressions, improvements)
    n, k = regressions + improvements, min(regressions, improvements)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    assert m["mcnemar_p"] == pytest.approx(p)
    slices = {s["slice"]: s for s in r["candidates"][0]["slices"]}
    assert slices["tag=harness_test_mc"]["items"] == 8 and slices["tag=harness_gen"]["items"] == 12
    html = (run / "report.html").read_text()
    assert "lm-eval log-likelihoods" in html or m["identical_share"] == 1.0


def test_lm_evals_own_run_agrees_with_the_harness_per_sample(tmp_path: Path) -> None:
    """lm-eval's simple_evaluate, loading the demo model itself, on our exported add set."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from harness.analysis.scorers import score_baseline
    from harness.inputs.evalset import load_evalset
    from harness.records import GenerationSettings
    from harness.run.generation import generate_texts

    evalset = REPO / "evalsets" / "demo" / "add.jsonl"
    export_tasks([str(evalset)], tmp_path)
    manager = TaskManager(include_path=str(tmp_path))
    # the harness indexes lm-eval's built-in tasks once a process: the same index
    assert task_manager(str(tmp_path))._index == manager._index
    result: Any = simple_evaluate(
        model="hf",
        model_args=f"pretrained={REPO / 'demo' / 'model'},dtype=float32",
        tasks=["harness_add"],
        task_manager=manager,
        log_samples=True,
        batch_size=64,
        device="cpu",
        bootstrap_iters=0,
    )
    theirs = {s["doc_id"]: float(s["exact_match"]) for s in result["samples"]["harness_add"]}
    items = load_evalset([str(evalset)])
    with open_backend(ModelSpec(name="demo", path=str(REPO / "demo" / "model"))) as backend:
        outputs = generate_texts(
            backend, items, GenerationSettings(max_new_tokens=32, batch_size=64)
        )
    ours = {
        i: score_baseline(item, out)
        for i, (item, out) in enumerate(zip(items, outputs, strict=True))
    }
    assert len(theirs) == len(ours) == 100
    assert theirs == ours


def test_unknown_task_is_one_clear_error(tiny_model_dir: Path) -> None:
    backend = open_backend(ModelSpec(name="t", path=str(tiny_model_dir)))
    with pytest.raises(LmEvalError, match="not found: no_such_task"):
        run_tasks(backend, LmEvalSettings(tasks=("no_such_task",)), batch_size=4)


def test_hub_task_offline_is_one_clear_error(tiny_model_dir: Path) -> None:
    backend = open_backend(ModelSpec(name="t", path=str(tiny_model_dir)))
    with pytest.raises(LmEvalError) as info:
        run_tasks(backend, LmEvalSettings(tasks=("hellaswag",), limit=2), batch_size=4)
    message = str(info.value)
    assert "\n" not in message and "offline" in message


def test_export_writes_a_task_per_file_and_skips_what_lm_eval_cannot_score(tmp_path: Path) -> None:
    src = tmp_path / "mixed-set.jsonl"
    rows = [
        {"id": "a", "prompt": "p1", "reference": "x"},
        {"id": "b", "prompt": "p2", "reference": ["x", "y"]},  # several references
        {"id": "c", "prompt": "p3", "scorer": "agreement"},  # reference-free
        {"id": "d", "prompt": "p4", "reference": "4", "scorer": "numeric", "difficulty": "hard"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = export_tasks([str(src)], tmp_path / "out")
    assert [p.name for p in written] == ["harness_mixed_set.yaml", "harness_mixed_set.jsonl"]
    data = [json.loads(line) for line in written[1].read_text().splitlines()]
    assert [d["id"] for d in data] == ["a", "d"] and data[1]["weight"] == 3.0
    yaml = written[0].read_text()
    assert "task: harness_mixed_set" in yaml and 'doc_to_text: "{{prompt}}"' in yaml


def test_shipped_lm_eval_tasks_are_current(tmp_path: Path) -> None:
    shipped = REPO / "data" / "lm_eval"
    names = sorted(p.name for p in shipped.iterdir())
    assert "harness_add_mc.yaml" in names and "harness_add.yaml" in names
    mc = [json.loads(line) for line in (shipped / "harness_add_mc.jsonl").read_text().splitlines()]
    assert all(r["choices"][r["label"]] == str(eval(r["prompt"][4:-1])) for r in mc)


def test_chat_mode_renders_through_the_template_and_adds_no_second_bos(
    tiny_model_dir: Path,
) -> None:
    from harness.run.lmeval import backend_lm

    backend = open_backend(ModelSpec(name="t", path=str(tiny_model_dir)))
    chat = [{"role": "user", "content": "add 1+1="}]
    plain, chatty = backend_lm(backend, 4), backend_lm(backend, 4, chat=True)
    text = chatty.apply_chat_template(chat)
    assert text == backend.render_chat(chat) and text.startswith("<bos>")
    assert chatty.tok_encode(text) == backend.encode(text)  # the template holds the <bos>
    assert plain.tok_encode("add") == backend.encode("add", add_special=True)


def test_chat_keys_reach_the_config(tmp_path: Path) -> None:
    from harness.inputs.config import load_config

    items = tmp_path / "i.jsonl"
    items.write_text(json.dumps({"id": "a", "prompt": "p", "reference": "r"}) + "\n")
    extra = (
        '[lm_eval]\ntasks = ["x"]\napply_chat_template = true\nfewshot_as_multiturn = true\n'
        'system_instruction = "Be brief."\ngen_kwargs = "max_gen_toks=8"\n'
    )
    cfg = load_config(
        write_config(
            tmp_path / "c.toml",
            items,
            tmp_path,
            {"c": tmp_path},
            "max_hard_regressions = 1",
            extra=extra,
        )
    )
    assert cfg.lm_eval is not None
    assert (cfg.lm_eval.apply_chat_template, cfg.lm_eval.fewshot_as_multiturn) == (True, True)
    assert (cfg.lm_eval.system_instruction, cfg.lm_eval.gen_kwargs) == (
        "Be brief.",
        "max_gen_toks=8",
    )
