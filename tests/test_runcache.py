"""The run cache's bookkeeping: journals that survive a cut line, and entries a plain compare
drops only when no other run reads them and no ladder keeps them."""

from __future__ import annotations

from pathlib import Path

from harness.runcache import ENTRY, Journal, RunCache


def make(cache: RunCache, key: str) -> None:
    with cache.claim(key, "m") as claim:
        assert claim.found is None
        (claim.work.root / "generations").mkdir()
        claim.commit({"seconds": 1.0})


def test_a_journal_drops_the_line_a_kill_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"rows": [[0, [1, 2], None]]})
    journal.append({"rows": [[1, [3], 2]]})
    with open(path, "ab") as f:
        f.write(b'{"rows": [[2, [4')  # the kill came mid-line
    again = Journal(path)
    assert again.batches == [{"rows": [[0, [1, 2], None]]}, {"rows": [[1, [3], 2]]}]
    assert path.read_bytes().endswith(b"]]}\n")  # cut back to the last whole line
    again.append({"rows": [[2, [4], None]]})
    assert len(Journal(path).batches) == 3


def test_a_plain_compare_drops_its_entries_unless_read_or_kept(tmp_path: Path) -> None:
    first, second = RunCache(tmp_path, keep=False), RunCache(tmp_path, keep=False)
    make(first, "k1")
    with second.claim("k1", "m") as claim:  # a second run reads what the first made
        assert claim.found is not None and claim.reused
    first.drop_transient()
    assert (tmp_path / "k1" / ENTRY).is_file()  # still read by the second
    second.drop_transient()
    assert not (tmp_path / "k1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock, no folder aside
    # a ladder that reads an entry keeps it from then on
    plain, ladder = RunCache(tmp_path, keep=False), RunCache(tmp_path, keep=True)
    make(plain, "k2")
    with ladder.claim("k2", "m") as claim:
        assert claim.reused
    ladder.drop_transient()
    plain.drop_transient()
    assert (tmp_path / "k2" / ENTRY).is_file()


def test_a_model_that_fails_before_its_first_batch_leaves_no_work_folder(tmp_path: Path) -> None:
    cache = RunCache(tmp_path, keep=False)
    try:
        with cache.claim("k", "m") as claim:
            claim.journal  # noqa: B018 - the work folder is made when its journal is opened
            raise RuntimeError("the model would not load")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
    # one with a finished batch stays, to resume from
    try:
        with cache.claim("k", "m") as claim:
            claim.journal.append({"rows": [[0, [1], None]]})
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert [p.name for p in tmp_path.iterdir()] == [".work-k"]
