"""Batched greedy generation: left padding must not change what a model says."""

from __future__ import annotations

from pathlib import Path

from harness.backends.hf import HFBackend
from harness.records import EvalItem, GenerationSettings, Message, ModelSpec, Role, Source
from harness.run import generate_texts


def items() -> list[EvalItem]:
    src = Source("t.jsonl", 1)
    return [
        EvalItem(id="short", source=src, prompt="ab", reference=("x",)),
        EvalItem(id="long", source=src, prompt="a much longer prompt here", reference=("x",)),
        EvalItem(id="capped", source=src, prompt="xyz", reference=("x",), max_new_tokens=3),
        EvalItem(id="chat", source=src, messages=(Message(Role.USER, "ab"),), reference=("x",)),
    ]


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec("tiny", str(tiny_model_dir)))
    batch = generate_texts(backend, items(), GenerationSettings(max_new_tokens=8, batch_size=4))
    single = [
        generate_texts(backend, [it], GenerationSettings(max_new_tokens=8, batch_size=1))[0]
        for it in items()
    ]
    assert batch == single


def test_token_limits_per_item(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec("tiny", str(tiny_model_dir)))
    ids = [backend.prompt_ids(it) for it in items()]
    # A stop id outside the vocabulary is never produced, so the limits decide.
    rows = {g.index: g.ids for b in backend.generate(ids, [8, 8, 3, 1], (10_000,), 4) for g in b}
    assert [len(rows[i]) for i in range(4)] == [8, 8, 3, 1]


def test_chat_template_renders_like_the_bare_prompt(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec("tiny", str(tiny_model_dir)))
    chat, bare = items()[3], items()[0]
    assert backend.prompt_ids(chat) == backend.prompt_ids(bare)
    assert backend.prompt_ids(bare)[0] == backend.tokenizer.bos_token_id
