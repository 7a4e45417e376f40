"""Checksums for what the harness keeps on disk and reads back later: the run cache's entries
and journals, the quantized checkpoints. A kept file is trusted only if it is what was
written: a record carries the sha256 of its own canonical JSON (`seal`), a folder the sha256
of every file it holds (`file_hashes`, recorded in its marker when made). A reader that finds
a difference says which file and makes the thing again (`harness.store.entry`), never
scores it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUM = "sum"  # the field of a sealed record holding its checksum


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_sum(record: Mapping[str, Any]) -> str:
    # Summed as it reads back: JSON makes every key a string (so {9: .., 10: ..} sorts
    # otherwise once read) and every tuple a list.
    plain = json.loads(json.dumps({k: v for k, v in record.items() if k != SUM}))
    text = json.dumps(plain, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def seal(record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` with the checksum of its content under `sum`."""
    return {**{k: v for k, v in record.items() if k != SUM}, SUM: _record_sum(record)}


def is_sealed(record: Any) -> bool:
    """Whether `record` is an object whose `sum` is the checksum of the rest of it."""
    return isinstance(record, dict) and record.get(SUM) == _record_sum(record)


def file_hashes(folder: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """The sha256 of every file under `folder` by relative path, but those named in `skip`."""
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and str(p.relative_to(folder)) not in skip
    }


def differences(folder: Path, recorded: Any, skip: frozenset[str] = frozenset()) -> str | None:
    """What differs between `folder` and the hashes recorded when it was made (None: nothing),
    in words naming the files: missing, changed, or not made with it."""
    if not isinstance(recorded, dict):
        return "no file hashes recorded"
    found = file_hashes(folder, skip)
    if recorded == found:
        return None
    parts = []
    for what, names in (
        ("missing", [k for k in recorded if k not in found]),
        ("changed", [k for k in recorded if k in found and recorded[k] != found[k]]),
        ("not made with it", [k for k in found if k not in recorded]),
    ):
        if names:
            parts.append(
                f"{what}: {', '.join(sorted(names)[:3])}"
                + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            )
    return "; ".join(parts)
