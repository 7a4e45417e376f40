"""`python -m harness`: the console script (commands that load engines run in a worker)."""

from harness.shell.cli import start

start()
