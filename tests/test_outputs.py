"""Nothing a user owns is overwritten or removed: every `--out` refuses what the harness did
not write, before any work; leftovers are swept only when the harness provably made them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.shell.cli import main
from harness.store.destinations import MARKER, OutputError, copy_file, output_folder, owned_folder
from harness.store.rundir import clean_leftovers

from .support.paths import DEMO, REPO


def test_quantize_out_over_a_users_folder_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    cache = tmp_path / "cache"
    code = main(
        [
            "quantize",
            "--baseline",
            str(DEMO),
            "--scheme",
            "W8A16",
            "--method",
            "rtn",
            "--cache",
            str(cache),
            "--out",
            str(mine),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"--out {mine}: a folder holding files the harness did not write" in err
    assert (mine / "config.json").read_text() == '{"mine": true}'
    assert not cache.exists()  # refused before quantizing anything


def test_quantize_out_writes_a_marked_copy_and_replaces_only_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "w8", tmp_path / "cache"
    args = [
        "quantize",
        "--baseline",
        str(DEMO),
        "--scheme",
        "W8A16",
        "--method",
        "rtn",
        "--cache",
        str(cache),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert (out / "config.json").is_file() and json.loads((out / MARKER).read_text()) == {
        "kind": "checkpoint"
    }
    (out / "stale.txt").write_text("from the last copy")  # ours: replaced whole
    assert main(args) == 0
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "w8"]  # nothing aside


def test_export_lm_eval_refuses_a_file_and_a_foreign_folder_and_replaces_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evalset = str(REPO / "evalsets" / "demo" / "add.jsonl")
    a_file = tmp_path / "tasks"
    a_file.write_text("keep me")
    assert main(["export-lm-eval", evalset, "--out", str(a_file)]) == 2
    assert "a file, not a folder" in capsys.readouterr().err and a_file.read_text() == "keep me"
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / MARKER).write_text(json.dumps({"kind": "corpus"}))
    assert main(["export-lm-eval", evalset, "--out", str(run_folder)]) == 2
    assert "holds a corpus output, not a lm-eval tasks one" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["export-lm-eval", evalset, "--out", str(out)]) == 0
    yaml = (out / "harness_add.yaml").read_text()
    assert str((out / "harness_add.jsonl").resolve()) in yaml  # names the final folder
    assert main(["export-lm-eval", evalset, "--out", str(out)]) == 0  # its own: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run", "tasks"]


def test_a_file_output_is_replaced_only_with_force(tmp_path: Path) -> None:
    source, out = tmp_path / "made.gguf", tmp_path / "copy.gguf"
    source.write_bytes(b"GGUF new")
    out.write_bytes(b"the user's")
    with pytest.raises(OutputError, match=r"the file exists .* --force replaces it"):
        copy_file(source, out, force=False)
    assert out.read_bytes() == b"the user's"
    copy_file(source, out, force=True)
    assert out.read_bytes() == b"GGUF new"
    link = tmp_path / "link.gguf"
    link.symlink_to(source)
    with pytest.raises(OutputError, match="not a plain file"):
        copy_file(source, link, force=True)


def test_a_killed_output_is_swept_and_an_earlier_one_put_back(tmp_path: Path) -> None:
    out = tmp_path / "tasks"
    dead = 2**22 + 1  # above pid_max's default: no process has it
    assert not os.path.exists(f"/proc/{dead}")
    with output_folder(out, "lm-eval tasks") as tmp:
        (tmp / "a.yaml").write_text("first")
    # a run killed between moving the old one aside and renaming the new one in
    out.rename(tmp_path / f".tasks.old-{dead}")
    half = tmp_path / f".tasks.tmp-{dead}"
    half.mkdir()
    (half / MARKER).write_text(json.dumps({"kind": "lm-eval tasks"}))
    users = [
        tmp_path / ".tasks.tmp",
        tmp_path / f".tasks.tmp-{dead}-notes",
        tmp_path / ".tasks.old",
    ]
    for folder in users:
        folder.mkdir()
        (folder / "x").write_text("the user's")
    with output_folder(out, "lm-eval tasks") as tmp:
        assert (out / "a.yaml").read_text() == "first"  # put back before the new one is made
        (tmp / "a.yaml").write_text("second")
    assert (out / "a.yaml").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tasks", *(u.name for u in users)])


def test_owned_folder_marks_a_new_folder_and_keeps_what_is_in_it(tmp_path: Path) -> None:
    out = owned_folder(tmp_path / "sens", "sensitivity")
    (out / "first-recipe.yaml").write_text("kept")
    assert owned_folder(out, "sensitivity") == out and (out / "first-recipe.yaml").is_file()
    with pytest.raises(OutputError, match="holds a sensitivity output, not a corpus one"):
        owned_folder(out, "corpus")


def test_a_run_folders_sweep_removes_only_what_the_harness_made(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".harness-run").write_text("a harness run folder\n")
    killed = out / ".results.json.k3x9a0_q"  # write_all's temporary, a kill left it
    killed.write_text("half")
    notes = out / ".results.json.notes"  # not a temporary name of ours
    notes.write_text("the user's")
    users = [tmp_path / ".run.tmp", tmp_path / ".run.old-mine", tmp_path / ".run.staging-x"]
    for folder in users:
        folder.mkdir()
        (folder / "thesis.tex").write_text("the user's")
    staging = tmp_path / ".run.staging-abcd1234"  # a staging folder of ours
    staging.mkdir()
    (staging / ".harness-run").write_text("a harness run folder\n")
    clean_leftovers(out)
    assert not killed.exists() and notes.read_text() == "the user's"
    assert not staging.exists()
    assert all((u / "thesis.tex").read_text() == "the user's" for u in users)
