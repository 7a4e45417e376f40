"""Builders shared by the end-to-end tests: eval-set rows and compare configs."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .paths import REPO

PAYLOADS = (
    "<script>alert(1)</script>",
    "</textarea>",
    "<img src=x onerror=alert(1)>",
    '<img src=x onerror="window.pwned=1">',
    "{{ 7*7 }}",
)


def shortened(
    out: Path, paths: Iterable[Path], max_new_tokens: int, per_file: int | None = None
) -> Path:
    """The rows of `paths` (the first `per_file` of each) in one eval set whose items allow at
    most `max_new_tokens`: the shipped sets give chat items up to 128, and the tests that
    read a few tokens of an answer need not pay for a whole one."""
    lines = []
    for path in paths:
        for line in path.read_text().splitlines()[:per_file]:
            row = json.loads(line)
            row["max_new_tokens"] = min(row.get("max_new_tokens") or max_new_tokens, max_new_tokens)
            lines.append(json.dumps(row, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n")
    return out


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
    from harness.run.generation import generate_texts

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


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def toml_text(data: Mapping[str, Any], prefix: str = "") -> str:
    """A config as TOML: its keys, then its tables, then its arrays of tables, each table's
    arrays of tables after it (`[[ladder.rungs]]`, which a later `[[ladder.rungs]]` may
    extend); a mapping inside a table is written inline, as `quantize = { ... }`."""
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if not _table(v)]
    for key, value in data.items():
        if not _table(value):
            continue
        name = f"{prefix}{key}"
        for row in value if isinstance(value, list) else [value]:
            lines.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            flat = {k: v for k, v in row.items() if not (isinstance(v, list) and _table(v))}
            lines += [f"{k} = {toml_value(v)}" for k, v in flat.items()]
            nested = {k: v for k, v in row.items() if k not in flat}
            if nested:
                lines.append(toml_text(nested, f"{name}.").rstrip("\n"))
    return "\n".join(lines) + "\n"


def _table(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, Mapping) for v in value)
    return isinstance(value, Mapping)


def write_config(
    path: Path,
    evalset: Path | str | list[Path | str],
    baseline: Path | Mapping[str, Any],
    candidates: Mapping[str, Path | Mapping[str, Any]],
    gate: str | Mapping[str, Any] = "",
    name: str = "t",
    extra: str = "",
    gated: bool = True,
    generation: Mapping[str, Any] | None = None,
    stats: Mapping[str, Any] | None = None,
    baseline_name: str = "base",
    **tables: Mapping[str, Any],
) -> Path:
    """The one writer of compare configs in the tests. By default over tiny models: 6 new
    tokens, batches of 4, 4 seeded orders for the intervals. The baseline and each candidate
    are a path, or the keys of their table (`{"quantize": {...}}`, `{"backend": "openai",
    ...}`); `gate` is a mapping, or TOML lines; `tables` are more tables
    (`agreement={"model": ...}`); `extra` is appended."""
    cands = [
        {"name": n, **({"path": c} if isinstance(c, Path | str) else dict(c)), "gated": gated}
        for n, c in candidates.items()
    ]
    data: dict[str, Any] = {
        "name": name,
        "evalsets": [str(e) for e in (evalset if isinstance(evalset, list) else [evalset])],
        "baseline": {
            "name": baseline_name,
            **({"path": baseline} if isinstance(baseline, Path | str) else dict(baseline)),
        },
        "candidates": cands,
        "generation": generation or {"max_new_tokens": 6, "batch_size": 4},
        "stats": {"orders": 4} if stats is None else stats,
        **tables,
    }
    text = toml_text(data)
    text += toml_text({"gate": gate}) if isinstance(gate, Mapping) else f"[gate]\n{gate}\n"
    path.write_text(text + extra)
    return path


def run_args(
    cfg: Path, out: Path, quantized: Path, runs: Path, command: str = "compare"
) -> tuple[str, ...]:
    """`harness compare` (or `ladder`) of `cfg` into `out`, with its own quantization and
    run caches."""
    return (
        command,
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--cache",
        str(quantized),
        "--run-cache",
        str(runs),
    )


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run in this process, from the repository's root: its exit code, stdout and
    stderr, as a subprocess would give them, without a second interpreter's imports (seconds
    a run). For runs that are not killed and set no fault."""
    from harness.shell.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def console_script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The `harness` console script in a process of its own (a worker, signals, fd-level
    output: what `in_process` cannot show), from `cwd` (default: the repository's root)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        check=False,
    )
