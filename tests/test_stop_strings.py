"""Stop strings end decoding (issue 35): a row ends at the token that completes its first stop
string, on every engine, and nothing measures the ids an engine made past it (they were
never served). The cut by hand first, then each engine on SmolLM2 with `stop = ["\\n"]`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.run.backends.base import (
    Generated,
    GenerateRequest,
    TopK,
    ends_on_string,
    stopped_at_strings,
)

from .support.helpers import in_process, write_config
from .support.paths import NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, SMOLLM

# A tokenizer by hand: id -> text.
PIECES = {1: "ab", 2: "c\n", 3: "d", 4: "\n", 5: "e", 6: "</s>"}


def decode(ids: Sequence[int]) -> str:
    return "".join(PIECES[i] for i in ids)


def test_a_row_ends_at_the_token_that_completes_its_first_stop_string() -> None:
    logp = torch.arange(12.0).reshape(6, 2)
    row = Generated(0, (1, 2, 3, 4, 5), 6, logp)
    cut = stopped_at_strings(row, ["\n"], decode)
    # "ab" "c\n": the second id holds the stop string; the stop id after it was never served
    assert cut.ids == (1, 2) and cut.stop_id is None
    assert cut.continuation == (1, 2) and torch.equal(cut.logprobs, logp[:2])
    # a stop string across tokens: "c\n" + "d" + "\n" holds "\nd\n" from id 4 on
    assert stopped_at_strings(row, ["\nd\n"], decode).ids == (1, 2, 3, 4)
    # the earliest of several strings wins
    assert stopped_at_strings(row, ["e", "d"], decode).ids == (1, 2, 3)
    # no stop string in the text, or none asked: the row as it was, stop id and all
    assert stopped_at_strings(row, ["zz"], decode) is row
    assert stopped_at_strings(row, [], decode) is row


def test_the_cut_slices_top_k_rows_and_keeps_a_row_that_ended_there() -> None:
    top = TopK(torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3), None)
    cut = stopped_at_strings(Generated(0, (5, 1, 2), None, top), ["c\n"], decode)
    assert cut.ids == (5, 1, 2) and cut.logprobs.ids.shape == (3, 2)
    cut = stopped_at_strings(Generated(0, (5, 1, 2), None, top), ["b"], decode)
    assert cut.ids == (5, 1) and cut.logprobs.logp.shape == (2, 2)
    assert cut.logprobs.target.shape == (2,) and cut.logprobs.tail is None


def test_an_engine_may_stop_early_only_on_a_completed_string() -> None:
    assert ends_on_string((1, 2), ["\n"], decode)
    assert not ends_on_string((1, 2, 3), ["\n"], decode)
    assert ends_on_string((5, 3, 4), ["d\n"], decode)
    assert not ends_on_string((), ["\n"], decode) and not ends_on_string((1, 2), [], decode)


ITEMS = [
    ("colors", "List three colors, one per line."),
    ("steps", "Give three steps to boil an egg, one per line."),
    ("code", "Write a Python function that adds two numbers."),
]


def write_items(path: Path) -> Path:
    import json

    rows = [
        {"id": i, "messages": [{"role": "user", "content": text}], "reference": "x"}
        for i, text in ITEMS
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows_of(spec: Any, stop: Sequence[str]) -> list[Generated]:
    """The runner's rows of ITEMS with `stop`, checked against the engine's own rows without
    it: each is the full row up to the first token whose text completes the stop string;
    and the engine, told the stop strings, made no token past it."""
    from harness.inputs.evalset import load_evalset
    from harness.records import GenerationSettings
    from harness.run.backends import open_backend
    from harness.run.generation import greedy_rows

    items = load_evalset([str(write_items(Path(spec.name + ".jsonl")))])
    settings = GenerationSettings(max_new_tokens=24, batch_size=2, stop=tuple(stop))
    with open_backend(spec) as backend:
        ids = [backend.prompt_ids(i) for i in items]
        limits = [24] * len(items)

        def engine(strings: Sequence[str]) -> list[Generated]:
            batches = backend.generate(
                GenerateRequest(ids, limits, backend.stop_ids, 2, stop_strings=strings)
            )
            return sorted((g for b in batches for g in b), key=lambda g: g.index)

        served = greedy_rows(backend, ids, limits, backend.stop_ids, settings)
        whole, early = engine(()), engine(stop)
        texts = {g.ids[:k]: backend.decode(g.ids[:k]) for g in whole for k in range(len(g.ids) + 1)}

    def text(ids: Sequence[int]) -> str:
        return texts[tuple(ids)]

    cut = 0
    for got, full, quick in zip(served, whole, early, strict=True):
        if any(s in text(full.ids) for s in stop):
            k = next(
                k for k in range(1, len(full.ids) + 1) if any(s in text(full.ids[:k]) for s in stop)
            )
            assert got.ids == full.ids[:k] and got.stop_id is None, (got, full)
            assert quick.ids == got.ids, (quick, got)  # stopped there, nothing made past it
            cut += k < len(full.ids)
        else:
            assert (got.ids, got.stop_id) == (full.ids, full.stop_id)
    assert cut >= 2  # the stop string ended rows the engine would have run on
    return served


@pytest.mark.real
@NEEDS_REAL_MODEL
def test_transformers_ends_rows_at_the_stop_string(tmp_path: Path, monkeypatch: Any) -> None:
    from harness.records import ModelSpec

    monkeypatch.chdir(tmp_path)
    rows_of(ModelSpec(name="hf", path=str(SMOLLM)), ["\n"])


@pytest.mark.real
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
@pytest.mark.parametrize("parallel", [1, 2])
def test_llama_cpp_ends_rows_at_the_stop_string(
    smollm2_ggufs: dict[str, Any], tmp_path: Path, monkeypatch: Any, parallel: int
) -> None:
    from harness.records import ModelSpec
    from harness.run.backends.llamacpp import LlamaCppSettings

    gguf = str(smollm2_ggufs["first"]["q8_0"].path.resolve())
    monkeypatch.chdir(tmp_path)
    spec = ModelSpec(
        name=f"llama{parallel}",
        path=gguf,
        backend="llama.cpp",
        threads=2,
        settings=LlamaCppSettings(parallel=parallel),
    )
    rows_of(spec, ["\n"])


@pytest.mark.real
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
def test_llama_server_ends_rows_at_the_stop_string(
    smollm2_ggufs: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    """The server is sent `stop`; the backend keeps the token that completed it."""
    from tests.support.servers import llama_server
    from tests.test_openai import served_spec

    gguf = smollm2_ggufs["first"]["q8_0"].path.resolve()
    monkeypatch.chdir(tmp_path)
    with llama_server(gguf, tmp_path / "server.log") as (url, _):
        rows_of(served_spec(url), ["\n"])


@pytest.mark.real
@NEEDS_REAL_MODEL
@NEEDS_LLAMA_CPP
def test_compare_measures_only_the_served_tokens(tmp_path: Path) -> None:
    """A compare with `stop = ["\\n"]`: every recorded output ends at the stop, its KLD
    positions are exactly its served tokens (plus the stop id where one ended it), and an
    output the stop cut is neither cut off nor longer than it was served."""
    import json

    sets = write_items(tmp_path / "s.jsonl")
    cfg = write_config(
        tmp_path / "c.toml",
        sets,
        SMOLLM,
        {"q8": {"quantize": {"engine": "llama.cpp", "type": "Q8_0"}}},
        {"max_mean_kld": 0.5},
        generation={"max_new_tokens": 40, "batch_size": 2, "stop": ["\n"]},
    )
    out = tmp_path / "run"
    done = in_process("compare", "--config", str(cfg), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    base = [json.loads(x) for x in (out / "generations" / "base.jsonl").read_text().splitlines()]
    dist = [json.loads(x) for x in (out / "distribution" / "q8.jsonl").read_text().splitlines()]
    positions = {d["id"]: len(d["kld"]) for d in dist}
    ended = 0
    for g in base:
        tokens = g["output_tokens"]
        assert all("\n" not in t for t in tokens[:-1]) and "\n" not in g["output"]
        if tokens and "\n" in tokens[-1]:
            ended += 1
            assert not g["cut_off"] and positions[g["id"]] == len(g["output_ids"])
        elif not g["cut_off"]:
            assert positions[g["id"]] == len(g["output_ids"]) + 1  # the stop id
    assert ended >= 2
