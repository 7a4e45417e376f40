"""The embedded demo: generators, data splits, committed sets, the committed model."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from demo import data, tasks
from demo.build_evalsets import build
from demo.tokenizer import build_tokenizer
from demo.train import MODEL_DIR, TrainConfig, train
from harness.inputs.evalset import load_evalset

from .support.paths import REPO

EVALSETS = REPO / "evalsets"


def test_carry_chain_by_hand() -> None:
    assert tasks.carry_chain(999, 1) == 3  # 9+1, 9+0+1, 9+0+1
    assert tasks.carry_chain(15, 5) == 1
    assert tasks.carry_chain(123, 456) == 0


@pytest.mark.parametrize("family", list(tasks.COMPUTED))
@pytest.mark.parametrize("level", list(tasks.Level))
def test_generators_give_right_answers(family: tasks.Family, level: tasks.Level) -> None:
    rng = random.Random(0)
    for _ in range(200):
        ex = tasks.COMPUTED[family](rng, level)
        assert ex.hard == level.hard
        body = ex.prompt.split(" ", 1)[1].rstrip("=")
        if family is tasks.Family.ADD:
            a, b = map(int, body.split("+"))
            assert int(ex.answer) == a + b
            assert not level.hard or (tasks.carry_chain(a, b) >= 3 and min(a, b) >= 1000)
            continue
        word = body.split(" in ")[-1]
        low, high = tasks.LENGTHS[family][level]
        assert low <= len(word) <= high
        if family is tasks.Family.REVERSE:
            assert ex.answer == word[::-1]
        elif family is tasks.Family.SORT:
            assert ex.answer == "".join(sorted(word))
        else:
            assert int(ex.answer) == word.count(body.split(" in ")[0])


def test_edge_reaches_past_the_training_curriculum() -> None:
    for lengths in tasks.LENGTHS.values():
        assert lengths[tasks.Level.EDGE][1] > lengths[tasks.Level.HARD][1]
        assert lengths[tasks.Level.EDGE][0] <= lengths[tasks.Level.HARD][1] + 1  # no gap


def test_fact_table_is_fixed_with_a_long_tail() -> None:
    facts = tasks.fact_table()
    assert facts == tasks.fact_table()
    assert len({(f.entity, f.relation) for f in facts}) == len(facts) == 240
    assert sum(f.tier == 0 for f in facts) == tasks.N_COMMON_FACTS
    assert {f.tier for f in facts} == {0, 1, 2, 3, 4}


def test_the_demo_models_whole_training_stream_holds_no_eval_prompt() -> None:
    """Every example the committed model trained on (steps x batch of the seeded stream)."""
    cfg = json.loads((MODEL_DIR / "training.json").read_text())["train_config"]
    held_out = {e.prompt for e in data.eval_examples() if e.family is not tasks.Family.RECALL}
    stream = itertools.islice(data.training_stream(cfg["seed"]), cfg["steps"] * cfg["batch_size"])
    assert not any(ex.prompt in held_out for ex in stream)


def test_committed_evalsets_regenerate_byte_for_byte(tmp_path: Path) -> None:
    for path in build(tmp_path):
        committed = REPO / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), committed


def test_demo_evalsets_size_hard_share_and_weights() -> None:
    items = load_evalset([str(EVALSETS / "demo")])
    hard = [i for i in items if i.hard]
    assert len(items) >= 400
    assert len(hard) / len(items) >= 0.40
    assert {i.weight for i in hard} == {3.0}
    assert {i.weight for i in items if not i.hard} == {1.0}
    families = {i.tags[0] for i in items}
    assert families == {f.value for f in tasks.Family}


def test_calibration_sets() -> None:
    traffic = load_evalset([str(REPO / "data" / "calibration" / "traffic.jsonl")])
    generic = load_evalset([str(REPO / "data" / "calibration" / "generic.jsonl")])
    assert len(traffic) >= 128 and len(generic) >= 128
    eval_prompts = {i.prompt for i in load_evalset([str(EVALSETS / "demo")])}
    keywords = ("add ", "reverse ", "sort ", "count ", "color of ", "home of ")
    assert all(str(i.prompt).startswith(keywords) for i in traffic)
    assert not any(str(i.prompt).startswith(keywords) for i in generic)
    assert not {str(i.prompt).split("=")[0] + "=" for i in traffic} & eval_prompts


def test_tokenizer_round_trip() -> None:
    tok = build_tokenizer()
    text = "add 12+30= Hello, world!\n"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_training_script_writes_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = TrainConfig(
        steps=2, batch_size=4, hidden_size=64, intermediate_size=128, layers=1, heads=2
    )
    log = train(cfg, tmp_path)
    assert log["loss_curve"] == [] and isinstance(log["parameters"], int)
    AutoModelForCausalLM.from_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("ab").input_ids[0] == 1
    assert json.loads((tmp_path / "training.json").read_text())["train_config"]["steps"] == 2


# --- the committed model ---------------------------------------------------------------


def test_committed_model_files() -> None:
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] % 128 == 0
    assert (MODEL_DIR / "tokenizer.json").is_file()
    weights = list(MODEL_DIR.glob("*.safetensors"))
    assert weights and sum(p.stat().st_size for p in weights) < 25 * 2**20


def test_committed_model_accuracy_bounds() -> None:
    """Greedy, full precision, offline: >= 90% on common items, 30-90% on hard items."""
    from demo.measure import measure

    totals = {r.difficulty: r for r in measure(MODEL_DIR) if r.family == "all"}
    common, hard = totals["common"].weighted_accuracy, totals["hard"].weighted_accuracy
    assert common is not None and hard is not None
    assert common >= 0.90, f"common accuracy {common:.1%}"
    assert 0.30 <= hard <= 0.90, f"hard accuracy {hard:.1%}"


def test_validate_accepts_every_shipped_set(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.shell.cli import main

    demo = sorted(str(p) for p in (EVALSETS / "demo").glob("*.jsonl"))
    calibration = sorted(str(p) for p in (REPO / "data" / "calibration").glob("*.jsonl"))
    assert main(["validate", *demo, *calibration]) == 0
    assert "ok: 884 items in 8 files (659 common, 225 hard)" in capsys.readouterr().out
