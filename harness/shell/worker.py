"""A native crash in an engine is contained: the command runs in a worker process.

llama.cpp and torch run native code in the harness's own process; an illegal instruction, a
segmentation fault or a C++ abort there kills the process at once, with no Python exception
to catch and no message. So `harness` (the console script, and `python -m harness`) runs
the commands that load engines in a child process (`python -m harness.shell.cli ...`, the same
command) and waits: when the child dies by a signal, the parent prints one line naming the
model, the engine and the signal, and exits 2. Nothing is lost that a kill would not lose
anyway: finished batches are in the run cache's journal (fsynced as each finishes, so a
rerun resumes), and the previous report is replaced only by a finished one (a rename).

Why a process around the whole command rather than a worker per engine: generation stays
exactly as fast as in process (no log-prob rows cross a pipe), and the child needs no
protocol. The child says what it is running through a small status file (`running`), which
the parent reads only after a crash. `HARNESS_WORKER` names that file in the child; a process
started with it set is the worker and never spawns another.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

WORKER_ENV = "HARNESS_WORKER"
PARENT_ENV = "HARNESS_WORKER_PARENT"
# The read end of a pipe whose write end only the `harness` process holds: it reads EOF the
# moment that process dies, however it dies and whichever of its threads started the worker
LIFELINE_ENV = "HARNESS_WORKER_LIFELINE"
# After the SIGTERM the parent's death sends, the worker has this long to clean up
GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Commands that load a model into the process (everything else reads files only).
ENGINE_COMMANDS = frozenset(
    {"compare", "ladder", "sweep", "corpus", "sensitivity", "quantize", "canary"}
)
EXIT_ERROR = 2
_SIGNUMS = {int(s) for s in signal.Signals}
_WHAT = {
    signal.SIGILL: "an illegal instruction: the engine's kernels use an instruction this "
    "machine does not run (for llama.cpp, `make llama-cpp` re-checks the build here)",
    signal.SIGSEGV: "a segmentation fault in native code",
    signal.SIGABRT: "an abort in native code (a failed assertion in the engine)",
    signal.SIGBUS: "a bus error in native code",
    signal.SIGFPE: "an arithmetic fault in native code",
    signal.SIGKILL: "SIGKILL from outside (the kernel's out-of-memory killer sends it)",
}


@contextlib.contextmanager
def running(model: str, engine: str, doing: str) -> Iterator[None]:
    """In the worker: say what runs now (for the parent's message after a crash)."""
    path = os.environ.get(WORKER_ENV)
    if not path:
        yield
        return
    _write(path, {"model": model, "engine": engine, "doing": doing})
    try:
        yield
    finally:
        _write(path, {})


def _write(path: str, data: dict[str, str]) -> None:
    tmp = f"{path}.tmp"
    with contextlib.suppress(OSError):
        Path(tmp).write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def follow_parent() -> None:
    """In the worker: SIGTERM when the `harness` process dies (it is in another process
    group, so a kill of that group or of that process alone would leave it running)."""
    parent = os.environ.get(PARENT_ENV)
    if not os.environ.get(WORKER_ENV) or not parent:
        return
    # The parent passes SIGINT on (`run`); a worker started from a shell's background job
    # inherits SIGINT ignored, and would run on after it: it takes it as a Ctrl-C instead.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    lifeline = os.environ.get(LIFELINE_ENV)
    if lifeline and lifeline.isdigit():
        import threading

        threading.Thread(target=_watch, args=(int(lifeline),), daemon=True).start()
    if os.getppid() != int(parent):  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _watch(fd: int) -> None:
    """Block on the lifeline; at its EOF (the parent is gone) SIGTERM this process, and if
    its clean-up has not ended it within GRACE_SECONDS, SIGKILL."""
    # the kernel may hand a process's SIGINT or SIGTERM to any thread that does not block
    # it; this one, asleep in read(), must not take them from the main thread
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    os.kill(os.getpid(), signal.SIGTERM)
    import time

    time.sleep(GRACE_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def supervised(words: Sequence[str]) -> bool:
    return not os.environ.get(WORKER_ENV) and bool(words) and words[0] in ENGINE_COMMANDS


def run(words: Sequence[str]) -> tuple[int, str | None]:
    """Run `harness WORDS` in a worker process: its exit code, or 2 with the line to say
    when a signal killed it (the command line prints it). SIGINT and SIGTERM sent to this
    process are passed on to the worker, which exits 130 or 143 after cleaning up, as it does
    when run alone."""
    fd, status = tempfile.mkstemp(prefix="harness-worker-", suffix=".json")
    os.close(fd)
    read, write = os.pipe()
    env = os.environ | {
        WORKER_ENV: status,
        PARENT_ENV: str(os.getpid()),
        LIFELINE_ENV: str(read),
    }
    # The worker in a process group of its own: a terminal's Ctrl-C reaches this process
    # alone, which passes it on once (a second SIGINT would cut the worker's clean-up short).
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.shell.cli", *words],
            env=env,
            process_group=0,
            pass_fds=(read,),
        )
    finally:
        os.close(read)  # the worker holds it now; this process keeps only the write end

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        os.close(write)
        for s, handler in previous.items():
            signal.signal(s, handler)
        doing = _read(status)
        for path in (status, f"{status}.tmp"):
            with contextlib.suppress(OSError):
                os.unlink(path)
    if code >= 0:
        return code, None
    return EXIT_ERROR, crash_line(-code, doing)


def _read(path: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def crash_line(signum: int, doing: dict[str, str]) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    what = _WHAT.get(signal.Signals(signum), "a signal") if signum in _SIGNUMS else "a signal"
    kept = (
        "finished batches are kept in the run cache (a rerun resumes from them); the "
        "previous report is untouched"
    )
    if doing.get("model"):
        return (
            f"model {doing['model']!r} on engine {doing.get('engine', '?')} was killed by "
            f"{name} while {doing.get('doing', 'running')}: {what}; {kept}"
        )
    return f"the harness was killed by {name}: {what}; {kept}"
