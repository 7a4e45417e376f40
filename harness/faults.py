"""Fault injection for the fault tests: `HARNESS_FAULT=<point>` (or `<point>@<n>`, the n-th
time it is reached) makes the process SIGKILL itself there, so a test can kill a real run
at an exact stage (mid-batch, mid-quantization, mid-report, between the renames) instead of
racing a timer. Unset, a point costs one dict lookup."""

from __future__ import annotations

import os
import signal

_reached: dict[str, int] = {}


def point(name: str) -> None:
    wanted = os.environ.get("HARNESS_FAULT")
    if not wanted:
        return
    where, _, nth = wanted.partition("@")
    if where != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
