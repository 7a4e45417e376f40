"""Following a log as it is written: complete lines only, each once, across rotation,
truncation and a restart from saved positions."""

from __future__ import annotations

from pathlib import Path

from harness.inputs.follow import Follower, dotted


def test_lines_once_across_partial_writes_rotation_truncation_and_restart(tmp_path: Path) -> None:
    log = tmp_path / "gateway.jsonl"
    log.write_text("a\nb\npart")
    f = Follower([str(tmp_path / "gateway.jsonl*")])
    assert [t for _, t in f.lines()] == ["a", "b"]  # "part" is still being written
    with log.open("a") as out:
        out.write("ial\nc\n")
    assert [t for _, t in f.lines()] == ["partial", "c"]
    with log.open("a") as out:
        out.write("d\n")
    log.rename(tmp_path / "gateway.jsonl.1")  # rotated: its rest first, then the new file
    log.write_text("e\n")
    assert sorted(t for _, t in f.lines()) == ["d", "e"]
    saved = f.positions()
    again = Follower([str(tmp_path / "gateway.jsonl*")], saved)  # a restart
    assert list(again.lines()) == []
    with log.open("a") as out:
        out.write("f\n")
    assert [t for _, t in again.lines()] == ["f"]
    log.write_text("x\n")  # truncated in place (copytruncate): shorter than what was read
    assert [t for _, t in again.lines()] == ["x"]


def test_a_dotted_field_reads_nested_and_json_text_bodies() -> None:
    line = {"request": '{"model": "m-q4"}', "meta": {"arm": "canary"}}
    assert dotted(line, "request.model") == "m-q4"
    assert dotted(line, "meta.arm") == "canary"
    assert dotted(line, "meta.missing") is None
