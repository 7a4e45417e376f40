"""Faults, injected into real processes: signals in the middle of a run, a checkpoint that
cannot be read. Exit codes mean one thing (1 only for a gate verdict), one line says what
happened, no traceback without --debug, and nothing half-written is left or lost."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .real_models import REPO

DEMO = REPO / "harness" / "demo" / "model"


def write_config(path: Path, candidate: Path = DEMO) -> Path:
    path.write_text(f"""
name = "faults"
evalsets = ["{REPO}/evalsets/demo/*.jsonl"]
[baseline]
name = "fp32"
path = "{DEMO}"
[[candidates]]
name = "again"
path = "{candidate}"
[generation]
max_new_tokens = 24
batch_size = 64
[gate]
max_weighted_accuracy_drop = 0.02
""")
    return path


def harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A config and a finished run folder of it (on one eval-set file: a few seconds)."""
    tmp = tmp_path_factory.mktemp("faults")
    cfg = write_config(tmp / "c.toml")
    out = tmp / "run"
    done = subprocess.run(harness("compare", "--config", str(cfg), "--out", str(out),
                                  "--evalset", f"{REPO}/evalsets/demo/add.jsonl"),
                          cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cfg, out, digest(out)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGINT, 130, "harness: interrupted (SIGINT); nothing half-written was kept"),
    (signal.SIGTERM, 143, "harness: terminated (SIGTERM); nothing half-written was kept"),
])  # fmt: skip
def test_a_signal_mid_run_exits_with_its_code_and_one_line(
    previous: tuple[Path, Path, dict[str, str]], sig: int, code: int, line: str
) -> None:
    cfg, out, before = previous
    proc = subprocess.Popen(harness("compare", "--config", str(cfg), "--out", str(out)),
                            cwd=REPO, stderr=subprocess.PIPE, text=True)  # fmt: skip
    # wait until the run has a half-built folder with the baseline's outputs in it
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if list(out.parent.glob(".run*/generations/fp32.jsonl")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == line and "Traceback" not in err
    # the previous report is intact, and nothing half-built is left beside it
    assert digest(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.toml", "run"]


@pytest.mark.slow
def test_an_unreadable_checkpoint_is_exit_2_in_one_line_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(DEMO, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    cfg = write_config(tmp_path / "c.toml", broken)
    args = ("compare", "--config", str(cfg), "--out", str(tmp_path / "run"), "--evalset",
            f"{REPO}/evalsets/demo/add.jsonl")  # fmt: skip
    done = subprocess.run(harness(*args), cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: model 'again' ({broken}): hf cannot load it: SafetensorError: Error while "
        "deserializing header: invalid header length"
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.slow
def test_an_unforeseen_failure_is_exit_2_with_the_traceback_in_a_log(
    previous: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """A review file nested 100,000 deep (json's recursion limit): no check names it yet, so
    it takes the path every unforeseen failure takes."""
    _, run, before = previous
    review = tmp_path / "review.json"
    review.write_text("[" * 100_000 + "]" * 100_000)
    args = ("review", "import", str(run), str(review))
    done = subprocess.run(harness(*args), cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: RecursionError: maximum recursion depth exceeded")
    log = Path(line.split("the traceback is in ")[1].split(";")[0])
    assert "Traceback" in log.read_text()
    log.unlink()
    assert digest(run) == before
    debug = subprocess.run(harness(*args, "--debug"), cwd=REPO, capture_output=True, text=True,
                           check=False)  # fmt: skip
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    Path(debug.stderr.split("the traceback is in ")[1].split(";")[0]).unlink()


def test_debug_may_stand_anywhere_on_the_line() -> None:
    done = subprocess.run(harness("validate", f"{REPO}/evalsets/demo/add.jsonl", "--debug"),
                          cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("ok: 100 items")
