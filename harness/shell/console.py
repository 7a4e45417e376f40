"""What the terminal shows: the harness's own lines and progress bars, not the libraries'.

transformers, llm-compressor (through loguru and tqdm), lm-eval and torch write warnings,
notices and bars of their own ("Ignoring clean_up_tokenization_spaces=True for BPE
tokenizer", "Loading weights: 100%", "(1/5): Calibrating"), interleaved with the harness's
progress. Unless `--verbose`, they
are turned down to errors before any of them is imported: by their own switches where they
have one (environment variables read at import), by Python's warning filters and logger
levels otherwise. The harness's messages go through the `harness` logger to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from harness.records.neutral import terminal_text

LIBRARIES = (
    "transformers",
    "torch",
    "llmcompressor",
    "compressed_tensors",
    "lm_eval",
    "datasets",
    "accelerate",
    "huggingface_hub",
    "sentence_transformers",
)
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "LOGURU_LEVEL": "WARNING",  # llm-compressor's loguru handler
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    # Every tqdm bar whose caller leaves `disable` at its default (llm-compressor's
    # "Calibrating", compressed-tensors' "Compressing model"); tqdm reads it when imported.
    # The harness's own bars pass `disable` explicitly, which the variable does not override.
    "TQDM_DISABLE": "1",
}


_quiet = False  # inside a quiet `session`: a library caller outside one sees everything


@functools.cache
def _bar_class() -> Any:
    from tqdm import tqdm

    class HarnessBar(tqdm):
        """The harness's own: `_quiet_bars` leaves it on."""

    return HarnessBar


def bar(**kwargs: Any) -> Any:
    """One of the harness's own progress bars (to stderr; off without a `desc`): the only
    bars a quiet session draws. Libraries' bars that pass `disable` themselves (compressed-
    tensors' "Applying quantization config", "Dispatching model"), which `TQDM_DISABLE` does
    not reach, are switched off by `_quiet_bars`."""
    kwargs.setdefault("disable", kwargs.get("desc") is None)
    return _bar_class()(file=sys.stderr, **kwargs)


# The description of the last bar a library opened while quiet (llm-compressor's
# "(12/31): Calibrating"): what a long step's heartbeat can say of its progress.
last_library_bar: list[str] = [""]


@contextlib.contextmanager
def _quiet_bars() -> Iterator[None]:
    """Every tqdm bar but the harness's own (`bar`) is created disabled meanwhile (its
    description kept in `last_library_bar`)."""
    from tqdm import std

    original = std.tqdm.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self, _bar_class()):
            kwargs["disable"] = True
            last_library_bar[0] = str(kwargs.get("desc") or "")
        original(self, *args, **kwargs)

    std.tqdm.__init__ = init
    try:
        yield
    finally:
        std.tqdm.__init__ = original


class _Stderr(logging.StreamHandler):
    """To whatever sys.stderr is when a record is emitted (a test's capture, a redirect made
    after the first command), not the stream of the first command."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        # a message may quote a server's body or a file's line: it must not drive the terminal
        return terminal_text(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        """On a line of its own: a progress bar being drawn is cleared first and drawn
        again below (else the message lands inside the bar's line)."""
        tqdm = sys.modules.get("tqdm")
        if tqdm is None or not getattr(tqdm.tqdm, "_instances", None):
            super().emit(record)
            return
        with tqdm.tqdm.external_write_mode(file=sys.stderr):
            super().emit(record)


def _harness_logger() -> None:
    logger = logging.getLogger("harness")
    if not logger.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@contextlib.contextmanager
def session(verbose: bool) -> Iterator[None]:
    """One command: the harness's logger to stderr, the libraries quiet unless `verbose`.
    Everything changed is put back afterwards (environment, logger levels, warning filters,
    transformers' own switches), so a library caller of `harness.shell.cli.main` and the processes
    it starts later are left as they were."""
    global _quiet
    _harness_logger()
    if verbose:
        yield
        return
    env = {key: os.environ.get(key) for key in QUIET_ENV}
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    hf_logging = sys.modules.get("transformers.utils.logging")
    hf_state = None
    if hf_logging is not None:  # imported already: its own switches, not the environment
        hf_state = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    _quiet = True
    try:
        with warnings.catch_warnings(), _quiet_bars():
            for name in LIBRARIES:
                warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
            yield
    finally:
        _quiet = False
        for key, old in env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if hf_logging is not None and hf_state is not None:
            hf_logging.set_verbosity(hf_state[0])
            if hf_state[1]:
                hf_logging.enable_progress_bar()


@contextlib.contextmanager
def heartbeat(what: str, every: float, terminal: Callable[[str], None]) -> Iterator[None]:
    """A line on the terminal every `every` seconds while the block runs (a GPTQ of a 270M
    model said nothing for 816 s): `what`, the time so far, and the step a library's last
    bar named ("(12/31): Calibrating" -> "layer group 12 of 31")."""
    import re
    import threading
    import time

    done = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            m = re.match(r"\((\d+)/(\d+)\)", last_library_bar[0])
            step = f", layer group {m.group(1)} of {m.group(2)}" if m else ""
            terminal(f"{what}: {time.monotonic() - start:.0f} s{step}")

    last_library_bar[0] = ""
    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def into_log(what: str) -> Iterator[Callable[[str], None]]:
    """Whatever a library writes to stderr meanwhile (bars it draws whatever it is told, such
    as llm-compressor's "Calibrating" and compressed-tensors' "Applying quantization
    config") goes to a log file: removed when the block succeeds, named when it fails. Off
    with `--verbose`. Redirects file descriptor 2, so native code's output goes there too.
    Yields a way to write a line to the terminal meanwhile (a heartbeat's)."""
    if not _quiet:
        yield _to_stderr
        return
    fd, path = tempfile.mkstemp(prefix=f"harness-{what}-", suffix=".log")
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    ok = False

    def terminal(text: str) -> None:
        os.write(saved, (terminal_text(text) + "\n").encode("utf-8", "replace"))

    try:
        yield terminal
        ok = True
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        if ok:
            os.unlink(path)
        else:
            logging.getLogger("harness").error("%s's own output is in %s", what, path)


def end_bars() -> None:
    """Close every progress bar still open (one a failure left mid-way, in a generator not
    yet collected), so that the error line that follows starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        with contextlib.suppress(Exception):
            bar.close()
