"""Builders shared by the end-to-end tests: eval-set rows and compare configs."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PAYLOADS = (
    "<script>alert(1)</script>",
    "</textarea>",
    "<img src=x onerror=alert(1)>",
    '<img src=x onerror="window.pwned=1">',
    "{{ 7*7 }}",
)


def agreement_rows(n: int, tags: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Reference-free items, every other one hard: the baseline agrees with itself (1.0), a
    different random model mostly does not, so these flip deterministically."""
    return [
        {
            "id": f"agree-{i}",
            "prompt": f"count a in {'ab' * (i + 1)}=",
            "scorer": "agreement",
            "difficulty": "hard" if i % 2 else "common",
            "tags": list(tags),
        }
        for i in range(n)
    ]


@functools.cache
def _baseline_answers(model_dir: Path, n: int) -> tuple[tuple[str, str], ...]:
    """(prompt, what the model answers) for prompts where it answers something, as compare
    decodes it with `write_config`'s settings (6 new tokens)."""
    from harness.records import EvalItem, GenerationSettings, ModelSpec, Source
    from harness.run.backends.hf import HFBackend
    from harness.run.runner import generate_texts

    prompts = [f"count a in {'ab' * (i + 1)}=" for i in range(3 * n)]
    items = [EvalItem(id=str(i), source=Source("-", 1), prompt=p) for i, p in enumerate(prompts)]
    backend = HFBackend(ModelSpec(name="ref", path=str(model_dir)))
    outputs = generate_texts(backend, items, GenerationSettings(max_new_tokens=6, batch_size=4))
    found = tuple((p, o.strip()) for p, o in zip(prompts, outputs, strict=True) if o.strip())
    if len(found) < n:
        raise RuntimeError(f"{model_dir}: only {len(found)} prompts have an answer")
    return found[:n]


def flipping_rows(model_dir: Path, n: int, tags: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Exact items whose reference is what the baseline model itself answers, every other one
    hard: the baseline is right on each, a different random model mostly not, so they flip
    (regressions) deterministically."""
    return [
        {
            "id": f"flip-{i}",
            "prompt": p,
            "reference": answer,
            "tags": list(tags),
            "difficulty": "hard" if i % 2 else "common",
        }
        for i, (p, answer) in enumerate(_baseline_answers(model_dir, n))
    ]


def payload_rows(payloads: Iterable[str] = PAYLOADS) -> list[dict[str, Any]]:
    """Items whose id, tag, prompt and reference all carry an HTML/template payload."""
    return [{"id": f"x{p}", "prompt": f"say {p}", "reference": p, "tags": [p]} for p in payloads]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(
    path: Path,
    evalset: Path,
    baseline: Path,
    candidates: dict[str, Path],
    gate: str,
    name: str = "t",
    extra: str = "",
    gated: bool = True,
) -> Path:
    """A compare config over tiny models: 6 new tokens, batches of 4, 300 resamples."""
    cands = "".join(
        f'[[candidates]]\nname = "{n}"\npath = "{p}"\ngated = {str(gated).lower()}\n'
        for n, p in candidates.items()
    )
    head = f'name = "{name}"\nevalsets = ["{evalset}"]\n'
    path.write_text(
        f'{head}[baseline]\nname = "base"\npath = "{baseline}"\n'
        f"{cands}[generation]\nmax_new_tokens = 6\nbatch_size = 4\n"
        f"[stats]\nbootstrap_samples = 300\n[gate]\n{gate}\n{extra}"
    )
    return path
