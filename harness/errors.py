"""The one base class of every error that ends a command with exit 2.

Each stage raises its own subclass (ConfigError, EvalsetError, ModelLoadError, ...) with a
one-line message that names what and where; the command line catches `HarnessError` alone,
so an unexpected exception is never mistaken for bad input, nor bad input for a crash.
"""

from __future__ import annotations


class HarnessError(Exception):
    """The run could not be evaluated; `lines()` is what the user reads."""

    def lines(self) -> list[str]:
        return [str(self)]


class RecordError(HarnessError, ValueError):
    """A record built in code (from flags or a run folder) breaks one of its invariants (a
    ValueError too: an invalid value, whoever passed it)."""
