"""Where the harness writes what a user asked for (`--out` of quantize, export-lm-eval,
sensitivity, corpus): it never overwrites or removes anything it cannot prove it wrote.

The rules are `compare --out`'s: a missing or empty folder is written; a folder holding this
command's marker (`.harness-output`, naming the kind of output) is one the harness wrote
earlier and is replaced whole; anything else — a folder with other files, a folder another
command wrote, a symbolic link, the working directory or above — is refused in one line. A
file output (a GGUF copied out) cannot carry a marker, so an existing file is replaced only
with `--force`. A folder is built aside (`.<name>.tmp-<pid>`) and renamed into place, the old
one moved aside first, so that a kill leaves the old or the new, never half of either; the
next run removes only such siblings (`harness.store.entry`: their exact names, a process
that is gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.records.errors import HarnessError, writing
from harness.store import entry

MARKER = ".harness-output"


class OutputError(HarnessError):
    """An output path the harness will not write to."""


def _kind(folder: Path) -> str | None:
    """The kind of output the harness wrote in `folder` (None: not one of ours)."""
    try:
        return str(json.loads((folder / MARKER).read_text(encoding="utf-8"))["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unsafe_target(out: Path, what: str = "") -> str | None:
    """Why no output folder (`what`: "a run " for a run folder) may go at `out` whatever it
    holds: /, the home folder, the working directory or a folder above it, a symbolic link;
    None when none of those. Every `--out` (run folders included) asks this first."""
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == Path(where.anchor) or where == Path.home().resolve():
        return f"refusing to write {what}over {where}"
    if where == cwd or where in cwd.parents:
        return "it holds the working directory; give a new folder"
    if out.is_symlink():
        return "a symbolic link; give the folder itself"
    return None


def check_folder(out: Path, kind: str) -> None:
    """Refuse `out` as a folder for `kind` unless it is missing, empty or ours of that kind."""
    if (why := unsafe_target(out)) is not None:
        raise OutputError(f"--out {out}: {why}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        found = _kind(out)
        if found is None:
            raise OutputError(
                f"--out {out}: a folder holding files the harness did not write (no {MARKER}); "
                "it is left as it is: give another --out"
            )
        if found != kind:
            raise OutputError(
                f"--out {out}: holds a {found} output, not a {kind} one; give another --out"
            )


def owned_folder(out: Path, kind: str) -> Path:
    """`out` as a folder this kind of output adds its files to (sensitivity's recipes, which
    ladder configs name, so a rerun must not remove them): refused as `check_folder` does,
    else made and marked."""
    check_folder(out, kind)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        (out / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
    return out


def check_file(out: Path, force: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise OutputError(f"--out {out}: not a plain file; give another --out")
    if out.exists() and not force:
        raise OutputError(
            f"--out {out}: the file exists (the harness cannot tell whether it "
            "wrote it); --force replaces it"
        )


def check_not_input(out: Path, inputs: Sequence[Path]) -> None:
    """An output that is one of the command's inputs (the same path, or the same file through
    a link) would replace what it reads: refused, `--force` or not."""
    target = out.resolve()
    for src in inputs:
        same = src.resolve() == target or (
            out.exists() and src.exists() and os.path.samefile(out, src)
        )
        if same:
            raise OutputError(
                f"--out {out} is the input {src}: the harness never replaces what it reads; "
                "give another --out"
            )


@contextlib.contextmanager
def output_folder(out: Path, kind: str) -> Iterator[Path]:
    """A new folder to fill (marked as `kind`), put in place of `out` when the body ends
    (`harness.store.entry`: built aside, renamed in, the previous one removed last)."""
    check_folder(out, kind)
    with entry.building(out) as tmp:
        (tmp / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
        with writing(out, " (nothing was replaced)"):
            yield tmp
        check_folder(out, kind)  # again: the body may have run for minutes


def copy_file(source: Path, out: Path, force: bool) -> None:
    """`source` copied to `out` whole (a temporary sibling renamed into place)."""
    check_file(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    entry.sweep(out.parent, only=out.name)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        with writing(out, " (nothing was replaced)"):
            shutil.copyfile(source, tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
