"""The harness home: where it keeps what it makes for itself, whatever folder it runs from.

One rule for every default path: the run cache (`runs/`), quantized checkpoints
(`quantized/`), the llama.cpp build (`llama.cpp/<version>/`), the models `make real-model`
fetches (`models/`) and what was downloaded for them (`downloads/`) live under the user's
cache, `$XDG_CACHE_HOME/harness` or `~/.cache/harness`; `HARNESS_HOME` moves all of them at
once. Paths written in a config resolve against the config's folder instead
(`harness.inputs.config`). Nothing here reads or writes: these are names.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "HARNESS_HOME"


def home() -> Path:
    """`HARNESS_HOME`, else `$XDG_CACHE_HOME/harness`, else `~/.cache/harness` (absolute)."""
    given = os.environ.get(HOME_ENV)
    if given:
        return Path(given).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(cache).expanduser() / "harness").absolute()


def runs() -> Path:
    return home() / "runs"


def quantized() -> Path:
    return home() / "quantized"


def models() -> Path:
    return home() / "models"


def downloads() -> Path:
    return home() / "downloads"
