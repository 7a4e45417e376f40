"""The run folder's owner: every file of a compare written once, atomically, and read back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness.shell.cli import main
from harness.store import rundir

from .support.helpers import flipping_rows, write_config, write_jsonl


def test_a_compare_writes_each_file_once(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: Counter[str] = Counter()
    whole: Counter[str] = Counter()
    real = rundir.write_all

    def counted(texts: dict[Path, str]) -> None:
        for path in texts:
            # by place: the run folder's (staged) files, and each model's run-cache entry's
            inside = path.parent.name if not path.parent.name.startswith(".") else ""
            writes[f"{inside}/{path.name}".lstrip("/")] += 1
            whole[str(path)] += 1
        real(texts)

    monkeypatch.setattr(rundir, "write_all", counted)
    evalset = write_jsonl(tmp_path / "s.jsonl", flipping_rows(tiny_model_dir, 6))
    cfg = write_config(
        tmp_path / "c.toml",
        evalset,
        tiny_model_dir,
        {"cand": other_model_dir},
        "max_hard_regressions = 100",
    )
    assert (
        main(
            [
                "compare",
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "run"),
                "--run-cache",
                str(tmp_path / "runs"),
            ]
        )
        == 0
    )
    assert writes["run.json"] == 1
    assert set(whole.values()) == {1}, whole
    for name in rundir.ARTIFACTS:
        assert writes[name] == 1
    # each model's outputs are written once, into its run-cache entry (what a kill resumes
    # from), and the run folder holds that same file (a hard link), not a second copy
    assert writes["generations/model.jsonl"] == 2
    assert writes["generations/base.jsonl"] == writes["generations/cand.jsonl"] == 0
    entries = {p.stat().st_ino for p in (tmp_path / "runs").glob("*/generations/model.jsonl")}
    run = tmp_path / "run" / "generations"
    assert {(run / f"{m}.jsonl").stat().st_ino for m in ("base", "cand")} == entries
    leftovers = [p.name for p in (tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_missing_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    expected = "missing; is this a run folder written by `harness compare`?"
    assert err == f"error: {tmp_path / 'run.json'}: {expected}"


def test_published_files_and_folders_keep_the_usual_permissions(tmp_path: Path) -> None:
    """Unguessable temporary names (mkstemp, mkdtemp) come with 0600/0700; a published run
    is readable as any file the user writes (the umask decides)."""
    import os

    from harness.store.rundir import publish, staging_for, write_atomic

    mask = os.umask(0o022)
    try:
        out = tmp_path / "run"
        staging = staging_for(out)
        write_atomic(staging.root / "results.json", "{}\n")
        publish(staging, out)
    finally:
        os.umask(mask)
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert oct((out / "results.json").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
