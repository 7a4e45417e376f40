"""Batched greedy generation: left padding must not change what a model says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.records import EvalItem, GenerationSettings, Message, ModelSpec, Role, Source
from harness.run.backends.base import GenerateRequest
from harness.run.backends.hf import HFBackend
from harness.run.generation import generate_texts


def items() -> list[EvalItem]:
    src = Source("t.jsonl", 1)
    return [
        EvalItem(id="short", source=src, prompt="ab", reference=("x",)),
        EvalItem(id="long", source=src, prompt="a much longer prompt here", reference=("x",)),
        EvalItem(id="capped", source=src, prompt="xyz", reference=("x",), max_new_tokens=3),
        EvalItem(id="chat", source=src, messages=(Message(Role.USER, "ab"),), reference=("x",)),
    ]


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec(name="tiny", path=str(tiny_model_dir)))
    batch = generate_texts(backend, items(), GenerationSettings(max_new_tokens=8, batch_size=4))
    single = [
        generate_texts(backend, [it], GenerationSettings(max_new_tokens=8, batch_size=1))[0]
        for it in items()
    ]
    assert batch == single


def test_token_limits_per_item(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec(name="tiny", path=str(tiny_model_dir)))
    ids = [backend.prompt_ids(it) for it in items()]
    # A stop id outside the vocabulary is never produced, so the limits decide.
    rows = {
        g.index: g.ids
        for b in backend.generate(GenerateRequest(ids, [8, 8, 3, 1], (10_000,), 4))
        for g in b
    }
    assert [len(rows[i]) for i in range(4)] == [8, 8, 3, 1]


def test_chat_template_renders_like_the_bare_prompt(tiny_model_dir: Path) -> None:
    backend = HFBackend(ModelSpec(name="tiny", path=str(tiny_model_dir)))
    chat, bare = items()[3], items()[0]
    assert backend.prompt_ids(chat) == backend.prompt_ids(bare)
    assert backend.prompt_ids(bare)[0] == backend.tokenizer.bos_token_id


def test_stop_ids_gather_every_end_of_turn(tiny_llama: Any) -> None:
    """A tokenizer eos that is not the generation config's, a list of config eos ids, and a
    chat template whose turns end with their own special token: decoding stops on each."""
    from .support.models import demo_tokenizer

    tok = demo_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|end|>"]})
    tok.chat_template = (
        "{% for m in messages %}{{ m['content'] }}"
        "{% if m['role'] == 'assistant' %}<|end|>{% endif %}{% endfor %}"
    )
    path = tiny_llama("stops", tokenizer=tok, seed=3)
    backend = HFBackend(ModelSpec(name="t", path=str(path)))
    end = tok.convert_tokens_to_ids("<|end|>")
    assert backend.stop_ids == (2, end)

    prompt = backend.prompt_ids(items()[0])
    [[free]] = list(backend.generate(GenerateRequest([prompt], [6], (10_000,), 1)))
    first = free.ids[0]
    backend.model.generation_config.eos_token_id = [5, first]
    assert backend.stop_ids == (2, 5, first, end)
    [[stopped]] = list(backend.generate(GenerateRequest([prompt], [6], backend.stop_ids, 1)))
    assert stopped.ids == () and stopped.stop_id == first


def test_loading_a_model_imports_no_scikit_learn() -> None:
    """transformers would import sklearn (a second of every engine process's start) for
    assisted decoding, which a greedy run never uses: a fresh process that loads the demo
    model and generates has not imported it."""
    import subprocess
    import sys

    from .support.paths import DEMO

    code = (
        "import sys; from harness.records import ModelSpec; "
        "from harness.run.backends.hf import load; "
        f"model, tok = load(ModelSpec(name='d', path={str(DEMO)!r})); "
        "model.generate(**tok('1+1=', return_tensors='pt'), max_new_tokens=2, do_sample=False); "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
