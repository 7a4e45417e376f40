"""Batched greedy generation: left padding must not change what a model says."""

from __future__ import annotations

from pathlib import Path

from harness.config import RunSettings
from harness.generate import generate_texts, greedy, prompt_ids
from harness.models import ModelSpec, load
from harness.records import EvalItem, Message, Role, Source


def items() -> list[EvalItem]:
    src = Source("t.jsonl", 1)
    return [
        EvalItem(id="short", source=src, prompt="ab", reference=("x",)),
        EvalItem(id="long", source=src, prompt="a much longer prompt here", reference=("x",)),
        EvalItem(id="capped", source=src, prompt="xyz", reference=("x",), max_new_tokens=3),
        EvalItem(id="chat", source=src, messages=(Message(Role.USER, "ab"),), reference=("x",)),
    ]


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    model, tok = load(ModelSpec("tiny", str(tiny_model_dir)))
    batch = generate_texts(model, tok, items(), RunSettings(max_new_tokens=8, batch_size=4))
    single = [
        generate_texts(model, tok, [it], RunSettings(max_new_tokens=8, batch_size=1))[0]
        for it in items()
    ]
    assert batch == single


def test_token_limits_per_item(tiny_model_dir: Path) -> None:
    model, tok = load(ModelSpec("tiny", str(tiny_model_dir)))
    ids = [prompt_ids(it, tok) for it in items()]
    # An <eos> id outside the vocabulary is never produced, so the limits decide.
    rows = greedy(model, ids, [8, 8, 3, 1], tok.pad_token_id, eos_id=10_000, batch_size=4)
    assert [len(r) for r in rows] == [8, 8, 3, 1]


def test_chat_template_renders_like_the_bare_prompt(tiny_model_dir: Path) -> None:
    _, tok = load(ModelSpec("tiny", str(tiny_model_dir)))
    chat, bare = items()[3], items()[0]
    assert prompt_ids(chat, tok) == prompt_ids(bare, tok)
    assert prompt_ids(bare, tok)[0] == tok.bos_token_id
