"""The equivalence threshold, measured: all-MiniLM-L6-v2 on hand-written pairs of the same
meaning in other words, and of other meanings (same topic included)."""

from __future__ import annotations

import json

import pytest

from harness.records.settings import DEFAULT_EQUIVALENCE

from .support.paths import MINILM, NEEDS_EMBEDDER, REPO

PAIRS = REPO / "tests" / "data" / "meaning_pairs.jsonl"


@NEEDS_EMBEDDER
def test_the_threshold_never_calls_another_meaning_equivalent() -> None:
    from harness.run.backends.hf import SentenceEmbedder

    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    sims = SentenceEmbedder(str(MINILM)).similarities([(r["a"], r["b"]) for r in rows])
    same = sorted(s for s, r in zip(sims, rows, strict=True) if r["same_meaning"])
    other = sorted(s for s, r in zip(sims, rows, strict=True) if not r["same_meaning"])
    # Measured here: same meaning 0.752 .. 0.989, other meanings 0.004 .. 0.769.
    assert max(other) < DEFAULT_EQUIVALENCE
    assert sum(s >= DEFAULT_EQUIVALENCE for s in same) >= 6 and min(same) > 0.7
    assert sims[0] == pytest.approx(0.989, abs=0.01)
