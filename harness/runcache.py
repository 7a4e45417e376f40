"""The run cache: what one model produced on one eval set, kept across runs.

A ladder runs the same baseline against many rungs, and is rerun with a rung added or after
a kill; none of that should generate with a model twice. Each finished model run is kept in
`.cache/harness/runs/<key>/`, a run folder of its own holding that one model under the name
`model` (generations, per-token distances, reference NLLs, lm-eval samples; for a baseline
also its packed log-probs, prompt ids and stop ids), plus `entry.json`, written last.

The key of a baseline is everything its outputs depend on: the checkpoint's content
fingerprint, the items (their content, in order), the generation settings, the engine and
its settings, the lm-eval tasks. A candidate's key adds its own fingerprint and engine to
its baseline's key (its per-token distances are measured against that baseline).

An entry is built in a temporary folder (`.tmp-<key>-<pid>`) and renamed into place whole:
a run killed at any point leaves either a complete entry or a temporary folder, which the
next run removes once its process is gone. Models that cannot be fingerprinted by content
(a server, a hub id) are never cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.codec import to_json
from harness.errors import HarnessError
from harness.records import EvalItem, GenerationSettings, LmEvalConfig, ModelSpec
from harness.results import item_to_json
from harness.rundir import RunDir, dumps, read_json, write_atomic

DEFAULT_RUN_CACHE = Path(".cache") / "harness" / "runs"
FORMAT = 1  # bumped when what an entry holds, or how outputs are made, changes
ENTRY = "entry.json"
MODEL = "model"  # the model's name inside an entry


class RunCacheError(HarnessError):
    """A run cache entry cannot be read."""


def cacheable(spec: ModelSpec, fingerprint: str) -> bool:
    """Only checkpoints fingerprinted by their content, run in this process."""
    return spec.backend != "openai" and not fingerprint.startswith("hub:")


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def engine_settings(spec: ModelSpec) -> dict[str, Any]:
    """What of a model spec changes its outputs (not its name, not its path)."""
    return {"backend": spec.backend, "dtype": spec.dtype, "device": spec.device,
            "threads": spec.threads, "context": spec.context}  # fmt: skip


def baseline_key(
    spec: ModelSpec, fingerprint: str, items: Sequence[EvalItem], settings: GenerationSettings,
    lm_eval: LmEvalConfig | None,
) -> str:  # fmt: skip
    return _digest({
        "format": FORMAT, "role": "baseline", "fingerprint": fingerprint,
        "engine": engine_settings(spec), "items": [item_to_json(i) for i in items],
        "generation": to_json(settings), "lm_eval": to_json(lm_eval),
    })  # fmt: skip


def candidate_key(spec: ModelSpec, fingerprint: str, base_key: str) -> str:
    return _digest({"format": FORMAT, "role": "candidate", "fingerprint": fingerprint,
                    "engine": engine_settings(spec), "baseline": base_key})  # fmt: skip


class RunCache:
    """Entries by key under `root`."""

    def __init__(self, root: Path = DEFAULT_RUN_CACHE) -> None:
        self.root = root

    def lookup(self, key: str) -> tuple[RunDir, dict[str, Any]] | None:
        """A complete entry (its folder and `entry.json`), or None."""
        folder = self.root / key
        if not (folder / ENTRY).is_file():
            return None
        meta = read_json(folder / ENTRY)
        if meta.get("format") != FORMAT or meta.get("key") != key:
            raise RunCacheError(f"{folder / ENTRY}: not an entry of this version; remove it")
        return RunDir(folder), meta

    def begin(self, key: str) -> RunDir:
        """An empty temporary folder to build the entry `key` in."""
        self.clean()
        tmp = self.root / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return RunDir(tmp)

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[RunDir]:
        """`begin`, and the temporary folder removed if the body fails or is interrupted (a
        SIGKILL leaves it for the next run's `clean`)."""
        tmp = self.begin(key)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp.root, ignore_errors=True)
            raise

    def commit(self, tmp: RunDir, key: str, meta: dict[str, Any]) -> tuple[RunDir, dict[str, Any]]:
        """Write `entry.json` last, then rename the folder into place."""
        meta = {"format": FORMAT, "key": key} | meta
        write_atomic(tmp.root / ENTRY, dumps(meta))
        final = self.root / key
        if final.exists():  # another run made it meanwhile: same inputs, same entry
            shutil.rmtree(tmp.root, ignore_errors=True)
        else:
            tmp.root.rename(final)
        found = self.lookup(key)
        if found is None:
            raise RunCacheError(f"{final}: the entry vanished after it was written")
        return found

    def clean(self) -> None:
        """Remove temporary folders whose process is gone (runs that were killed)."""
        if not self.root.is_dir():
            return
        for tmp in self.root.glob(".tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
