"""The long-context families (evalsets/long-context/, written by
evalsets/build/long_context.py from a seed): four prompt lengths, 50 items each; every
reference re-derived here from its prompt text, independently of the generator; the lengths
measured with SmolLM2's own tokenizer."""

from __future__ import annotations

import collections
import json
import re
from typing import Any

import pytest

from .support.paths import NEEDS_REAL_MODEL, REPO, SMOLLM

SETS = REPO / "evalsets" / "long-context"
LENGTHS = (512, 2048, 4096, 7168)


def rows() -> list[dict[str, Any]]:
    return [json.loads(x) for p in sorted(SETS.glob("*.jsonl")) for x in p.read_text().splitlines()]


def answer(family: str, text: str) -> str:
    """What the prompt says the answer is, read by code."""
    if family == "needle":
        m = re.search(r"What is the access code for the (\w+) (\w+)\?", text)
        assert m is not None
        [code] = re.findall(rf"The access code for the {m[1]} {m[2]} is (\d+)\.", text)
        return code
    if family == "variables":
        m = re.search(r"What is the value of VAR (\w+)\?", text)
        assert m is not None
        assign = dict(re.findall(r"VAR (\w+) = ((?:VAR )?\w+)\.", text))
        name, hops = m[1], 0
        while assign[name].startswith("VAR "):
            name, hops = assign[name][4:], hops + 1
        assert hops >= 3  # the answer needs every hop
        return assign[name]
    listed = text.split("\n\n")[1].rstrip(".").split(", ")
    (word, n), (_, runner_up) = collections.Counter(listed).most_common(2)
    assert n >= 1.2 * runner_up  # a clear mode
    return word


def test_four_lengths_of_fifty_items_whose_references_the_prompts_give() -> None:
    data = rows()
    per = collections.Counter(next(t for t in r["tags"] if t.startswith("length=")) for r in data)
    assert per == {f"length={n}": 50 for n in LENGTHS}
    families = collections.Counter(r["tags"][1] for r in data)
    assert families == {"needle": 68, "variables": 68, "frequent": 64}
    for r in data:
        said = answer(r["tags"][1], r["messages"][0]["content"])
        # scored as a whole word or number, any case (48213 is not in 148213)
        assert r["scorer"] == "regex" and r["reference"] == rf"(?i)\b{said}\b", r["id"]


@pytest.mark.real
@NEEDS_REAL_MODEL
def test_each_prompt_is_within_a_fifth_under_its_length_in_smollm2_tokens() -> None:
    from harness.inputs.evalset import load_evalset
    from harness.records import ModelSpec
    from harness.run.backends.hf import HFBackend

    items = load_evalset([str(p) for p in sorted(SETS.glob("*.jsonl"))])
    backend = HFBackend(ModelSpec(name="fp32", path=str(SMOLLM)))
    for item in items:
        target = int(next(t for t in item.tags if t.startswith("length="))[7:])
        n = len(backend.prompt_ids(item))
        assert 0.8 * target <= n <= target, (item.id, n)


def test_the_docs_tables_read_the_runs_slices_and_items(tmp_path: Any) -> None:
    """`--table` on a hand-made results.json: per length the slice's own interval, lost and
    won items; per family and length each model's correct answers."""
    import subprocess
    import sys

    def band(n: int, drop: float) -> dict[str, Any]:
        acc = {"baseline": 0.5, "candidate": 0.5 - drop, "drop": drop, "ci_low": drop - 0.1}
        acc["ci_high"] = drop + 0.1
        return {
            "slice": f"tag=length={n}",
            "items": 2,
            "accuracy": acc,
            "regressions": 1,
            "improvements": 0,
        }

    items = [
        {
            "tags": ["long-context", family, f"length={n}"],
            "baseline": {"score": 1.0},
            "candidates": {"q": {"score": float(family == "needle"), "outcome": "identical"}},
        }
        for family in ("needle", "frequent")
        for n in LENGTHS
    ]
    slices = [band(n, 0.25 if n == 7168 else 0.0) for n in LENGTHS]
    results = {"baseline": {"name": "fp32"}, "candidates": [{"name": "q", "slices": slices}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**results, "items": items}))
    done = subprocess.run(
        [sys.executable, "-m", "evalsets.build.long_context", "--table", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[2] == "| 512 (2) | 50.0% | 50.0%, +0.0 [-10.0, +10.0] pts, 1 / 0, 2 of 2 |"
    assert lines[5] == "| 7,168 (2) | 50.0% | 25.0%, +25.0 [+15.0, +35.0] pts, 1 / 0, 2 of 2 |"
    assert "| needle | q | 1/1 | 1/1 | 1/1 | 1/1 |" in lines
    assert "| frequent | q | 0/1 | 0/1 | 0/1 | 0/1 |" in lines
    assert "| variables | fp32 | 0/0 | 0/0 | 0/0 | 0/0 |" in lines
