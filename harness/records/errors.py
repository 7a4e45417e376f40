"""The one base class of every error that ends a command with exit 2.

Each stage raises its own subclass (ConfigError, EvalsetError, ModelLoadError, ...) with a
one-line message that names what and where; the command line catches `HarnessError` alone,
so an unexpected exception is never mistaken for bad input, nor bad input for a crash.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class HarnessError(Exception):
    """The run could not be evaluated; `lines()` is what the user reads."""

    def lines(self) -> list[str]:
        return [str(self)]


class RecordError(HarnessError, ValueError):
    """A record built in code (from flags or a run folder) breaks one of its invariants (a
    ValueError too: an invalid value, whoever passed it)."""


class DiskFull(HarnessError):
    """A file could not be written for want of space (or quota)."""


FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def writing(path: Path | str, after: str = "") -> Iterator[None]:
    """Writes to `path` in the body: a full disk is said as one line naming the file (an
    OSError from a write names none), `after` added (what became of what was written)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL:
            raise DiskFull(f"{path}: cannot be written: {exc.strerror}{after}") from exc
        raise
