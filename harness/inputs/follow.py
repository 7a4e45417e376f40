"""Request logs followed as they grow (`harness canary`): complete lines only, each once.

A `Follower` keeps, per file (device and inode), the byte offset after the last complete
line it gave out, and which file each path named. A line still being written (no newline
yet) waits for the next poll. Rotation is handled by identity: when a path names another file
than before (`gateway.jsonl` moved to `gateway.jsonl.1` and a new one created), the rest of
the old file is read first, found by its identity beside the path (or under its new name, if
the glob matches it: its offset went with it), then the new file from its start. A file cut
shorter than its offset (truncated in place, as logrotate's copytruncate does) is read again
from its start; one rewritten past the offset before the next poll cannot be told from one
that grew: rotate by renaming. The positions are plain data (`positions()`), saved by the
caller in the same atomic write as what it made of the lines, so that a restart after SIGKILL
resumes exactly there: no line is counted twice, none is skipped.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.inputs.logs.common import FAILED, Answer, BadLine, Request, SetAside
from harness.inputs.traffic import TRAFFIC_FORMATS, detect, read_text

MAX_LINE = 8 * 2**20  # as the importer: a longer line is skipped whole, and counted


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


class Follower:
    """Positions are kept per file (device and inode), not per name: a rotated file keeps
    its offset under its new name (matched by the glob or found beside its old name), so
    no line is read twice however the files are renamed."""

    def __init__(self, patterns: Sequence[str], positions: Mapping[str, Any] | None = None):
        self.patterns = list(patterns)
        saved = positions or {}
        self._offsets: dict[str, int] = {k: int(v) for k, v in saved.get("files", {}).items()}
        self._names: dict[str, str] = dict(saved.get("paths", {}))
        self.too_long = 0

    def positions(self) -> dict[str, Any]:
        live = set(self._names.values())
        # a file no name points to any more has been read to its end and left behind
        return {
            "files": {k: v for k, v in sorted(self._offsets.items()) if k in live},
            "paths": dict(sorted(self._names.items())),
        }

    def paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)) or (
                [pattern] if Path(pattern).is_file() else []
            ):
                if path not in found:
                    found.append(path)
        return found

    def lines(self) -> Iterator[tuple[str, str]]:
        """(path, line) for every complete line written since the last call."""
        for path in self.paths():
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated away this instant: the next poll sees the new file
            ident = _identity(st)
            before = self._names.get(path)
            if before is not None and before != ident:  # rotated: the old file's rest first
                old = _sibling(path, before)
                if old is not None:
                    yield from self._read(path, old, before)
            self._names[path] = ident
            if st.st_size < self._offsets.get(ident, 0):  # truncated in place
                self._offsets[ident] = 0
            yield from self._read(path, path, ident)

    def _read(self, path: str, real: str, ident: str) -> Iterator[tuple[str, str]]:
        with open(real, "rb") as f:
            f.seek(self._offsets.get(ident, 0))
            while True:
                raw = f.readline(MAX_LINE + 1)
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE:  # skip to the end of this overlong line
                        while raw and not raw.endswith(b"\n"):
                            raw = f.readline(MAX_LINE)
                        if raw:
                            self.too_long += 1
                            self._offsets[ident] = f.tell()
                            continue
                    return  # nothing more, or a line still being written
                self._offsets[ident] = f.tell()
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if text.strip():
                    yield path, text


def _sibling(path: str, ident: str) -> str | None:
    """The file a path named before it was rotated: the sibling with that identity."""
    folder = os.path.dirname(path) or "."
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if _identity(st) == ident and full != path:
            return full
    return None


def dotted(obj: Any, path: str) -> Any:
    """A value at a dotted path in a parsed JSON line (`request.model`); None: not there."""
    for part in path.split("."):
        if isinstance(obj, str) and obj[:1] == "{":
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError:
                return None
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


@dataclass(frozen=True, slots=True)
class Record:
    """One logged request as a canary sees it: its arm, the request (None when it failed or
    was set aside), whether it failed, its latency where logged."""

    arm: str
    request: Request | None
    failed: bool
    latency: float | None = None


def read_record(
    text: str, arm_field: str, latency_field: str | None, forced: str | None = None
) -> Record | None:
    """A log line as a record; None: not a request line (a text log's other lines, a batch
    answer) or one this canary cannot read. Raises BadLine for a line that is not JSON."""
    fmt = TRAFFIC_FORMATS.get(forced) if forced else None
    if not text.lstrip().startswith("{"):
        found = read_text(text, fmt)
        if found is None or isinstance(found[1], Answer):
            return None
        return Record("", found[1], False)  # a text log names no arm: not splittable
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise BadLine("$", "not JSON") from None
    if not isinstance(obj, dict):
        raise BadLine("$", "not a JSON object")
    arm = dotted(obj, arm_field)
    latency = dotted(obj, latency_field) if latency_field else None
    latency = float(latency) if isinstance(latency, int | float) else None
    kind = fmt or detect(obj)
    if kind is None:
        raise BadLine("$", "no format reads it")
    try:
        got = kind.read(obj)
    except SetAside as exc:
        failed = str(exc) == FAILED
        return Record(str(arm), None, failed, latency) if failed else None
    except KeyError as exc:
        raise BadLine(str(exc.args[0]), "missing") from None
    if isinstance(got, Answer):
        return None
    return Record(str(arm), got, False, latency)
