"""The `harness` command line: the process around a command (its worker, its console,
its signals, its exit code); the commands themselves are in `harness.commands`.

Exit codes (`harness.shell.exits`): 0 every gated candidate passes · 1 a gated candidate
fails its gate (and for nothing else) · 2 the run could not be evaluated · 130 SIGINT ·
143 SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from harness.commands import build_parser
from harness.shell import console, worker
from harness.shell.exits import failed, terminate

__all__ = ["build_parser", "main", "start"]


def start() -> None:
    """The `harness` console script (and `python -m harness`): commands that load engines run
    in a worker process, so a native crash there ends in one line, not a killed harness
    (`harness.shell.worker`)."""
    words = sys.argv[1:]
    command = [w for w in words if w not in ("--debug", "--verbose")]
    if not worker.supervised(command):
        sys.exit(main(words))
    code, crash = worker.run(words)
    if crash is not None:  # on a line of its own: the worker died mid-way through a bar's line
        print(f"\nerror: {crash}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 pass, 1 a gate verdict fails, 2 anything else (one line), 130 SIGINT,
    143 SIGTERM. `--debug` anywhere on the line prints tracebacks; `--verbose` lets the
    libraries' own warnings and loading bars through (`harness.shell.console`)."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words
    with console.session(verbose="--verbose" in words):
        return _main([w for w in words if w not in ("--debug", "--verbose")], debug)


def _main(words: list[str], debug: bool) -> int:
    args = build_parser(words).parse_args(words)
    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        previous = None
    worker.follow_parent()
    try:
        code: int = args.func(args)
    except BaseException as exc:
        console.end_bars()  # the line below starts a line of its own
        return failed(exc, debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


if __name__ == "__main__":
    sys.exit(main())
