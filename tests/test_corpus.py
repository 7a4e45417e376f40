"""Corpus mode: chunking as llama-perplexity does it (by hand), and config checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.inputs.config import ConfigError, parse_config
from harness.run.corpus import chunk_ids, split


def test_chunks_are_whole_and_start_with_bos() -> None:
    tokens = list(range(10, 21))  # 11 tokens: two chunks of 4, the tail of 3 dropped
    assert chunk_ids(tokens, 4, None, bos=None) == [[10, 11, 12, 13], [14, 15, 16, 17]]
    assert chunk_ids(tokens, 4, None, bos=1) == [[1, 11, 12, 13], [1, 15, 16, 17]]
    assert chunk_ids(tokens, 4, 1, bos=None) == [[10, 11, 12, 13]]
    assert chunk_ids(tokens[:3], 4, None, bos=None) == []


def test_second_half_of_each_chunk_is_scored() -> None:
    """llama-perplexity: first = n_ctx/2; the logits at positions first .. n_ctx-2 predict
    tokens first+1 .. n_ctx-1. For 8 tokens: positions 4, 5, 6 predict tokens 5, 6, 7."""
    prompt, scored = split([0, 1, 2, 3, 4, 5, 6, 7])
    assert prompt == [0, 1, 2, 3, 4]
    assert scored == [5, 6, 7]
    prompt, scored = split(list(range(512)))
    assert len(scored) == 255 and len(prompt) == 257


def test_corpus_table_is_checked(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("some text\n")
    base = {
        "name": "c",
        "evalsets": ["x.jsonl"],
        "baseline": {"name": "b", "path": "b"},
        "candidates": [{"name": "q", "path": "q"}],
    }
    cfg = parse_config(base | {"corpus": {"text": "t.txt", "context": 256}}, tmp_path / "c.toml")
    assert cfg.corpus is not None and cfg.corpus.context == 256 and cfg.corpus.reference is None
    with pytest.raises(ConfigError, match="reference 'nope' names no model"):
        parse_config(base | {"corpus": {"text": "t.txt", "reference": "nope"}}, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="no such file"):
        parse_config(base | {"corpus": {"text": "missing.txt"}}, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="unknown key 'ctx'"):
        parse_config(base | {"corpus": {"text": "t.txt", "ctx": 5}}, tmp_path / "c.toml")
