"""Exit codes, and what a failure prints: 0 every gated candidate passes · 1 a gated
candidate fails its gate (and for nothing else) · 2 the run could not be evaluated (a
`HarnessError` — bad input, missing model, unknown gate key — or any other failure, in one
line, the traceback in a log file) · 130 interrupted (SIGINT) · 143 terminated (SIGTERM)."""

from __future__ import annotations

import os
import sys

from harness.records.errors import HarnessError
from harness.records.neutral import terminal_text

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report them


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that cleanups run as for Ctrl-C."""


def terminate(signum: int, frame: object) -> None:
    raise Terminated


def crash(exc: Exception, debug: bool) -> int:
    """Anything but a gate verdict exits 2 with one line; the traceback goes to a log file
    (and to the terminal with --debug), never to CI as if it were a quality regression."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    fd, log = tempfile.mkstemp(prefix="harness-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if debug:
        print(text, file=sys.stderr, end="")
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else exc.filename
        what = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        what = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
    print(f"error: {what} (the traceback is in {log}; --debug prints it)", file=sys.stderr)
    return EXIT_ERROR


def failed(exc: BaseException, debug: bool) -> int:
    """A failure as its exit code and one line (a crash: its traceback in a log)."""
    if isinstance(exc, HarnessError):
        for line in exc.lines():
            print(f"error: {terminal_text(line)}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        print("harness: interrupted (SIGINT); nothing half-written was kept", file=sys.stderr)
        return EXIT_SIGINT
    if isinstance(exc, Terminated):
        print("harness: terminated (SIGTERM); nothing half-written was kept", file=sys.stderr)
        return EXIT_SIGTERM
    if isinstance(exc, Exception):
        return crash(exc, debug)
    raise exc  # SystemExit, GeneratorExit: not ours to turn into a code
