"""The run cache's bookkeeping: journals that survive a cut line, and entries a plain compare
drops only when no other run reads them and no ladder keeps them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.store.runcache import ENTRY, Journal, RunCache


def make(cache: RunCache, key: str) -> None:
    with cache.session(key, "m") as session:
        assert session.found is None
        (session.work.root / "generations").mkdir()
        session.commit({"seconds": 1.0})


def test_a_journal_drops_the_line_a_kill_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"rows": [[0, [1, 2], None]]})
    journal.append({"rows": [[1, [3], 2]]})
    with open(path, "ab") as f:
        f.write(b'{"rows": [[2, [4')  # the kill came mid-line
    again = Journal(path)
    assert again.batches == [{"rows": [[0, [1, 2], None]]}, {"rows": [[1, [3], 2]]}]
    assert path.read_bytes().endswith(b'"}\n')  # cut back to the last whole line
    again.append({"rows": [[2, [4], None]]})
    assert len(Journal(path).batches) == 3


def test_a_plain_compare_drops_its_entries_unless_read_or_kept(tmp_path: Path) -> None:
    first, second = RunCache(tmp_path, keep=False), RunCache(tmp_path, keep=False)
    make(first, "k1")
    with second.session("k1", "m") as session:  # a second run reads what the first made
        assert session.found is not None and session.reused
    first.drop_transient()
    assert (tmp_path / "k1" / ENTRY).is_file()  # still read by the second
    second.drop_transient()
    assert not (tmp_path / "k1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock, no folder aside
    # a ladder that reads an entry keeps it from then on
    plain, ladder = RunCache(tmp_path, keep=False), RunCache(tmp_path, keep=True)
    make(plain, "k2")
    with ladder.session("k2", "m") as session:
        assert session.reused
    ladder.drop_transient()
    plain.drop_transient()
    assert (tmp_path / "k2" / ENTRY).is_file()


def test_a_model_that_fails_before_its_first_batch_leaves_no_work_folder(tmp_path: Path) -> None:
    cache = RunCache(tmp_path, keep=False)
    try:
        with cache.session("k", "m") as session:
            session.done_batches  # noqa: B018 - the work folder is made when its batches are read
            raise RuntimeError("the model would not load")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
    # one with a finished batch stays, to resume from
    try:
        with cache.session("k", "m") as session:
            session.record({"rows": [[0, [1], None]]})
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert [p.name for p in tmp_path.iterdir()] == [".work-k"]


def said(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the harness logged: on stderr once a command has set up its handler in this
    process (the harness logger then stops propagating), else through pytest's capture."""
    return capsys.readouterr().err + caplog.text


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (lambda b: b"{}\n", 2),  # a line replaced by an empty object
        (lambda b: b.replace(b"[3, 4]", b"[3, 5]"), 2),  # an output id changed, same length
        (lambda b: b.replace(b'"rows"', b'"rowz"'), 2),  # a field renamed
        (lambda b: b"\x00\xff garbled\n", 2),
    ],
)
def test_a_damaged_journal_line_is_said_and_it_and_what_follows_are_made_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[bytes], bytes],
    line: int,
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    for k, ids in enumerate(([1, 2], [3, 4], [5])):
        journal.append({"rows": [[k, ids, None]], "probe": None})
    lines = _lines(path)
    lines[line - 1] = damage(lines[line - 1])
    path.write_bytes(b"".join(lines))
    again = Journal(path)
    assert again.batches == [{"rows": [[0, [1, 2], None]], "probe": None}]
    assert f"{path}:{line}: not the batch that was written" in said(capsys, caplog)
    assert _lines(path) == lines[:1]  # cut back to the intact prefix: a rerun appends to it
    again.append({"rows": [[1, [3, 4], None]], "probe": None})
    assert len(Journal(path).batches) == 2


def test_keep_cuts_a_journal_to_its_first_batches(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    for k in range(4):
        journal.append({"rows": [[k, [k], None]]})
    journal.keep(2, "the store differs")
    assert len(journal.batches) == 2 and len(Journal(path).batches) == 2
    journal.append({"rows": [[2, [9], None]]})
    assert [b["rows"][0][1] for b in Journal(path).batches] == [[0], [1], [9]]
    journal.keep(0, "the store is gone")
    assert path.read_bytes() == b"" and Journal(path).batches == []


def _entry_damages() -> dict[str, Callable[[Path], None]]:
    def edit_meta(entry: Path) -> None:
        meta = json.loads((entry / ENTRY).read_text())
        meta["seconds"] = 2.0  # a field changed, the file still JSON
        (entry / ENTRY).write_text(json.dumps(meta))

    def truncate(entry: Path) -> None:
        data = entry / "generations" / "model.jsonl"
        data.write_bytes(data.read_bytes()[:5])

    return {
        "entry.json missing": lambda e: (e / ENTRY).unlink(),
        "entry.json garbled": lambda e: (e / ENTRY).write_bytes(b"\x00{not json"),
        "entry.json field changed": edit_meta,
        "a file truncated": truncate,
        "a file missing": lambda e: (e / "generations" / "model.jsonl").unlink(),
        "a file added": lambda e: (e / "generations" / "extra.jsonl").write_text("{}\n"),
    }


@pytest.mark.parametrize("damage", list(_entry_damages()))
def test_a_damaged_entry_is_said_removed_and_made_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    cache = RunCache(tmp_path, keep=True)
    with cache.session("k", "m") as session:
        (session.work.root / "generations").mkdir()
        (session.work.root / "generations" / "model.jsonl").write_text('{"id": "a"}\n')
        session.commit({"seconds": 1.0})
    assert cache.lookup("k") is not None
    _entry_damages()[damage](tmp_path / "k")
    with cache.session("k", "m") as session:
        assert session.found is None  # not trusted: made again
        (session.work.root / "generations").mkdir()
        (session.work.root / "generations" / "model.jsonl").write_text('{"id": "a"}\n')
        _, meta = session.commit({"seconds": 1.0})
    assert f"{tmp_path / 'k'}: damaged run-cache entry (" in said(capsys, caplog)
    assert meta["seconds"] == 1.0 and cache.lookup("k") is not None
    with cache.session("k", "m") as session:  # and from then on read back
        assert session.reused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # nothing aside left over


def test_a_sealed_record_reads_back_sealed_whatever_its_keys_and_sequences() -> None:
    from harness.store.sealed import is_sealed, seal

    record = {"pieces": {9: "a", 10: "b"}, "ids": (1, 2), "x": float("nan")}
    assert is_sealed(json.loads(json.dumps(seal(record))))
    changed = json.loads(json.dumps(seal(record)))
    changed["ids"] = [1, 3]
    assert not is_sealed(changed)


def test_adding_a_candidate_reads_the_baseline_back(tmp_path: Path) -> None:
    """A finished compare keeps its models' entries: the same config with one candidate more
    runs the added one alone (the baseline and the first candidate are read back)."""
    import json

    from harness.shell.cli import main

    from .support.helpers import write_config
    from .support.paths import DEMO, REPO

    sets = REPO / "evalsets" / "demo" / "add.jsonl"
    bf16 = {"path": DEMO, "dtype": "bfloat16"}
    one = write_config(tmp_path / "one.toml", sets, DEMO, {"bf16": bf16}, "max_mean_kld = 0.5")
    two = write_config(
        tmp_path / "two.toml", sets, DEMO, {"bf16": bf16, "same": DEMO}, "max_mean_kld = 0.5"
    )
    runs = tmp_path / "runs"
    flags = ["--run-cache", str(runs)]
    assert main(["compare", "--config", str(one), "--out", str(tmp_path / "a"), *flags]) == 0
    kept = [p.name for p in runs.iterdir() if not p.name.startswith(".")]
    assert len(kept) == 2  # the baseline's and the candidate's
    assert main(["compare", "--config", str(two), "--out", str(tmp_path / "b"), *flags]) == 0
    reused = json.loads((tmp_path / "b" / "run.json").read_text())["durations"]["reused"]
    assert reused == {"base": True, "bf16": True, "same": False}
