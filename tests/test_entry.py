"""The durable entry every store uses: built aside, sealed, renamed in, checked on reading,
and what a killed process left swept without touching anything else."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.store import entry

DEAD = 2**22 + 1  # above the default pid_max: no process has it


def make(final: Path, text: str) -> dict[str, object]:
    with entry.building(final) as tmp:
        (tmp / "data.txt").write_text(text)
        return entry.write_seal(tmp, "marker.json", {"what": text})


def test_an_entry_is_built_aside_sealed_and_read_back(tmp_path: Path) -> None:
    final = tmp_path / "e"
    written = make(final, "one")
    record, why = entry.check(final, "marker.json")
    assert (
        why == ""
        and record == written
        and record["files"]
        == {"data.txt": "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"}
    )
    make(final, "two")  # replaced: the previous one aside first, removed last
    assert (final / "data.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


def test_a_failed_build_leaves_the_previous_entry_and_nothing_else(tmp_path: Path) -> None:
    final = tmp_path / "e"
    make(final, "one")
    with pytest.raises(RuntimeError), entry.building(final) as tmp:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("the engine failed")
    assert (final / "data.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda e: (e / "data.txt").write_text("onf"), "changed: data.txt"),
        (lambda e: (e / "data.txt").unlink(), "missing: data.txt"),
        (lambda e: (e / "extra").write_text("x"), "not made with it: extra"),
        (lambda e: (e / "marker.json").unlink(), "marker.json is missing"),
        (lambda e: (e / "marker.json").write_text("{"), "marker.json cannot be read"),
        (
            lambda e: (e / "marker.json").write_text(
                (e / "marker.json").read_text().replace('"one"', '"two"')
            ),
            "marker.json is not what was written (its checksum differs)",
        ),
    ],
)
def test_a_damaged_entry_is_said_naming_what_differs(
    tmp_path: Path, damage: Callable[[Path], object], why: str
) -> None:
    final = tmp_path / "e"
    make(final, "one")
    damage(final)
    record, said = entry.check(final, "marker.json")
    assert record is None and why in said


def test_an_unsealed_marker_is_taken_only_when_asked(tmp_path: Path) -> None:
    final = tmp_path / "e"
    make(final, "one")
    marker = json.loads((final / "marker.json").read_text())
    del marker["sum"]
    (final / "marker.json").write_text(json.dumps(marker))
    assert entry.check(final, "marker.json")[0] is None
    assert entry.check(final, "marker.json", sealed_only=False)[0] is not None


def test_the_sweep_puts_back_an_entry_left_aside_and_removes_only_leftovers(
    tmp_path: Path,
) -> None:
    make(tmp_path / "e", "one")
    (tmp_path / "e").rename(tmp_path / f".e.old-{DEAD}")  # killed between the two renames
    (tmp_path / f".e.tmp-{DEAD}").mkdir()  # killed mid-build
    (tmp_path / f".f.gone-{DEAD}").mkdir()  # killed mid-removal
    mine = [f".e.tmp-{DEAD}-notes", ".e.tmp", ".e.old-mine", "e.tmp-1"]
    for name in mine:
        (tmp_path / name).mkdir()
    live = tmp_path / ".e.tmp-1"  # pid 1 is alive: another process is building
    live.mkdir()
    entry.sweep(tmp_path)
    assert (tmp_path / "e" / "data.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["e", ".e.tmp-1", *mine])
