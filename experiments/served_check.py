"""The same compare through llama-server: do served GGUFs give the in-process outputs?

`python -m experiments.served_check --config examples/smollm2-gguf.toml` (after `harness compare`
of that config wrote reports/<name>/): starts one llama-server per GGUF candidate on
127.0.0.1 (free ports, stopped after), runs the compare again with every GGUF candidate
replaced by `backend = "openai"` pointing at its server, into reports/<name>-served/, and
prints, per candidate, how many greedy outputs are identical to the in-process run's. Each
difference is explained where it can be: the first token where the two outputs part, and the
in-process engine's margin between its two most likely tokens there (a near-tie that the
server's batched kernels can tip either way).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness.run.llama_server import llama_server


def generations(run: Path, name: str) -> list[dict[str, Any]]:
    path = run / "generations" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def explain(gguf: str, prompt: list[int], a: list[int], b: list[int]) -> str:
    """Where two outputs part, and the in-process top-2 margin at that token."""
    from harness.records import ModelSpec
    from harness.run.backends import open_backend

    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    with open_backend(ModelSpec(name="x", path=gguf, backend="llama.cpp")) as backend:
        cont = a[: k + 1] if k < len(a) else [*a, 2]
        row = next(iter(backend.score([prompt], [cont], 1)))[-1]
        top = row.topk(2)
    margin = float(top.values[0] - top.values[1])
    return f"part at token {k}; in-process top-2 margin there {margin:.4f} nats (teacher-forced)"


def absolute(path: str) -> str:
    """The derived config lives in reports/: its paths must not be relative to the first's."""
    return str(Path(path).resolve())


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--explain", type=int, default=10, help="differences explained, at most")
    args = parser.parse_args()
    from harness.commands.corpus import corpus_models
    from harness.inputs.config import load_config

    cfg = load_config(args.config)
    models = {m.name: m for m in corpus_models(cfg)}
    local = Path("reports") / cfg.name
    served_run = Path("reports") / f"{cfg.name}-served"
    raw = tomllib.loads(args.config.read_text())
    base_dir = args.config.parent.resolve()
    with ExitStack() as stack:
        tables = []
        for cand in raw["candidates"]:
            spec = models[cand["name"]]
            if spec.backend != "llama.cpp":
                continue
            log = Path("reports") / f"llama-server-{spec.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            url, _ = stack.enter_context(llama_server(Path(spec.path), log, parallel=2))
            tables.append(
                {
                    "name": cand["name"],
                    "backend": "openai",
                    "path": absolute(cfg.baseline.path),
                    "base_url": url,
                    "model": spec.name,
                    "concurrency": 2,
                    "gated": cand.get("gated", True),
                }
            )
        raw["candidates"] = tables
        raw["name"] = f"{cfg.name}-served"
        raw["evalsets"] = [str((base_dir / e).resolve()) for e in raw["evalsets"]]
        raw["baseline"]["path"] = absolute(cfg.baseline.path)
        raw.pop("corpus", None)
        if "agreement" in raw:
            raw["agreement"]["model"] = absolute(cfg.agreement.model)
        config = Path("reports") / f"{cfg.name}-served.toml"
        config.write_text(dump(raw))
        cmd = [
            sys.executable,
            "-m",
            "harness.shell.cli",
            "compare",
            "--config",
            str(config),
            "--out",
            str(served_run),
        ]
        code = subprocess.run(cmd, check=False).returncode
        if code not in (0, 1):
            raise SystemExit(f"the served compare exited {code}")
    prompts: dict[str, list[int]] = {}
    for t in tables:
        ours, theirs = generations(local, t["name"]), generations(served_run, t["name"])
        same = sum(a["output_ids"] == b["output_ids"] for a, b in zip(ours, theirs, strict=True))
        print(f"{t['name']}: {same} of {len(ours)} served outputs identical to in-process")
        shown = 0
        for a, b in zip(ours, theirs, strict=True):
            if a["output_ids"] == b["output_ids"] or shown >= args.explain:
                continue
            if not prompts:
                prompts = prompt_ids(cfg)
            why = explain(
                models[t["name"]].path, prompts[a["id"]], a["output_ids"], b["output_ids"]
            )
            print(f"  {a['id']}: {why}")
            shown += 1


def prompt_ids(cfg: Any) -> dict[str, list[int]]:
    from harness.inputs.evalset import load_evalset
    from harness.run.backends import open_backend

    items = load_evalset(list(cfg.evalsets))
    with open_backend(cfg.baseline) as backend:
        return {i.id: backend.prompt_ids(i) for i in items}


def dump(data: dict[str, Any]) -> str:
    """Just enough TOML for a compare config (tables, arrays of tables, scalars, lists)."""
    out = []
    for key, value in data.items():
        if not isinstance(value, dict | list) or (
            isinstance(value, list) and not any(isinstance(v, dict) for v in value)
        ):
            out.append(f"{key} = {toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"\n[{key}]")
            out += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for entry in value:
                out.append(f"\n[[{key}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
