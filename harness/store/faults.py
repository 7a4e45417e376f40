"""Fault injection for the fault tests: `HARNESS_FAULT=<point>` (or `<point>@<n>`, the n-th
time it is reached; `<point>[@<n>]:SIGILL` another signal than SIGKILL) makes the process
signal itself there, so a test can kill a real run at an exact stage (mid-batch,
mid-quantization, mid-report, between the renames, inside an engine's generation loop as a
native crash would) instead of racing a timer. Unset, a point costs one dict lookup."""

from __future__ import annotations

import os
import signal

_reached: dict[str, int] = {}


def point(name: str) -> None:
    wanted = os.environ.get("HARNESS_FAULT")
    if not wanted:
        return
    kind = ""
    if wanted.rpartition(":")[2].startswith("SIG"):  # point names hold colons themselves
        wanted, _, kind = wanted.rpartition(":")
    where, _, nth = wanted.partition("@")
    if where != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        sig = signal.Signals[kind] if kind else signal.SIGKILL
        if sig is not signal.SIGKILL:  # die of it, as a crash in native code would
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
