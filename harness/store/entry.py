"""The durable entry: one way to keep a folder on disk that a later run trusts, used by the
quantized cache, the run cache and the output folders of `--out`.

An entry is built in a private sibling (`.<name>.tmp-<pid>`), sealed — a marker written last
holds its record, the sha256 of every other file, and the checksum of itself
(`harness.store.sealed`) — and renamed into place; a previous entry is renamed aside first
(`.<name>.old-<pid>`) and removed last, so that at every instant one of them is whole. A
reader checks the seal before trusting a byte (`check`); an entry removed on purpose is
renamed away first (`.<name>.gone-<pid>`), so that no reader finds half of it. What a killed
process left is swept by the next one (`sweep`): an earlier entry renamed aside goes back in
place when nothing replaced it; the rest is removed — only siblings with those exact names,
of a process that is gone.

The run folder (`rundir.py`) publishes the same way but under unguessable names (`mkdtemp`):
reports may live in a folder others can write to, where a predictable name could be planted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.records.errors import writing
from harness.store import faults
from harness.store.sealed import SUM, differences, file_hashes, is_sealed, seal

_SIBLING = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old|gone)-(?P<pid>\d+)")


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def _sibling(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{os.getpid()}")


def sweep(root: Path, only: str | None = None) -> None:
    """Remove what killed processes left in `root` (for the entry named `only`, or every
    entry): `.<name>.old-<pid>` goes back to `<name>` when nothing took its place, every other
    `.tmp-`, `.old-` and `.gone-` sibling of a dead process is removed."""
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        m = _SIBLING.fullmatch(path.name)
        if m is None or (only is not None and m["name"] != only) or path.is_symlink():
            continue
        if alive(int(m["pid"])):
            continue
        final = root / m["name"]
        if m["kind"] == "old" and path.is_dir() and not final.exists():
            path.rename(final)  # the kill came between the two renames: the old one is whole
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def install(tmp: Path, final: Path, point: str | None = None) -> None:
    """Rename the complete folder `tmp` to `final`; a previous `final` is renamed aside first
    and removed last. `point`: a fault point just before (the tests kill there)."""
    if point is not None:
        faults.point(point)
    aside = _sibling(final, "old")
    if final.exists():
        final.rename(aside)
    tmp.rename(final)
    shutil.rmtree(aside, ignore_errors=True)


def remove(final: Path) -> None:
    """Remove an entry: renamed away first, so that a reader finds it whole or not at all."""
    gone = _sibling(final, "gone")
    try:
        final.rename(gone)
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)


@contextlib.contextmanager
def building(final: Path, point: str | None = None) -> Iterator[Path]:
    """A new private sibling of `final` to fill; installed when the body succeeds, removed
    when it fails: an interrupted build leaves nothing where readers look."""
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final.parent, only=final.name)
    tmp = _sibling(final, "tmp")
    if tmp.exists():  # this process's own, from a build that failed without cleaning up
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    install(tmp, final, point)


def write_seal(folder: Path, marker: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Write `marker` into `folder`, last: `record`, the sha256 of every other file of the
    folder, and the checksum of the whole. Returns what was written (without its checksum)."""
    sealed = seal({**record, "files": file_hashes(folder, frozenset({marker}))})
    path = folder / marker
    with writing(path), open(path, "w", encoding="utf-8") as f:  # a private folder: no reader
        f.write(json.dumps(sealed, indent=2, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return {k: v for k, v in sealed.items() if k != SUM}


def check(folder: Path, marker: str, sealed_only: bool = True) -> tuple[dict[str, Any] | None, str]:
    """(the marker's record, "") when `folder` is whole — its marker sealed, every file the
    one recorded —, else (None, what differs, in words naming the files). `sealed_only=False`
    also takes a marker written before markers were sealed, its files still checked."""
    path = folder / marker
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{marker} is missing"
    except (ValueError, OSError) as exc:  # garbled: not JSON, not UTF-8
        return None, f"{marker} cannot be read: {type(exc).__name__}"
    if not isinstance(record, dict) or ((sealed_only or SUM in record) and not is_sealed(record)):
        return None, f"{marker} is not what was written (its checksum differs)"
    why = differences(folder, record.get("files"), frozenset({marker}))
    if why is not None:
        return None, why
    record.pop(SUM, None)
    return record, ""
