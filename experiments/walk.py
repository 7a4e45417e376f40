"""How one compare walks through the code: `python -m experiments.walk [--config demo.toml]`
(`make walk`), the run cache warm, so that the walk is the code's, not the models'.

Two counts, from a profile of every Python call during `compare(cfg, out)`:

- **following the config**: every call of a harness function that is handed the config or
  one of its tables (the `CompareConfig` object, or the same object as one of its fields:
  `cfg.generation`, `cfg.baseline`, a candidate...); "functions entered" is how many such
  calls, "modules" how many modules they lie in, "returns" how many times the walk goes back
  to a module it had left before (a climb back up the stack to a room already visited);
- **runner and run cache**: calls from the run stage's modules into the run cache
  (`harness.store.runcache`), the store boundary the run stage talks through.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any


def pieces(cfg: Any) -> set[int]:
    """The ids of the config and of its tables (its dataclass fields, and the items of its
    tuple fields)."""
    out = {id(cfg)}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out.add(id(value))
        elif isinstance(value, tuple):
            out |= {id(v) for v in value if is_dataclass(v)}
    return out


def walk(config: Path) -> dict[str, Any]:
    import importlib

    try:  # the library API; before the commands had one home, `harness.pipeline`
        api = importlib.import_module("harness.api")
    except ImportError:
        api = importlib.import_module("harness.pipeline")
    compare, load_config = api.compare, importlib.import_module("harness").load_config
    cfg = load_config(config)
    watched = pieces(cfg)
    entered: list[tuple[str, str]] = []
    boundary = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal boundary
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("harness."):
            return
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if module == "harness.store.runcache" and caller.startswith("harness.run."):
            boundary += 1
        code = frame.f_code
        args = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount]]
        if any(id(a) in watched for a in args):
            entered.append((module, code.co_name))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        compare(cfg, out)  # warm the caches: the counted walk reads everything back
        sys.setprofile(profile)
        try:
            compare(cfg, Path(tmp) / "again")
        finally:
            sys.setprofile(None)
    modules = [m for m, _ in entered]
    left: set[str] = set()
    returns = 0
    for prev, now in itertools.pairwise(modules):
        if now != prev:
            left.add(prev)
            if now in left:
                returns += 1
    return {
        "functions_entered": len(entered),
        "modules": len(set(modules)),
        "returns_to_a_module_left": returns,
        "runner_to_run_cache_calls": boundary,
        "walk": [f"{m}.{f}" for m, f in entered],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("demo.toml"))
    parser.add_argument("--out", type=Path, help="write the whole walk here (JSON)")
    args = parser.parse_args()
    found = walk(args.config)
    if args.out:
        args.out.write_text(json.dumps(found, indent=1) + "\n")
    print(json.dumps({k: v for k, v in found.items() if k != "walk"}))


if __name__ == "__main__":
    main()
