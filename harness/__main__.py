"""`python -m harness`: the console script (commands that load engines run in a worker)."""

from harness.cli import entry

entry()
