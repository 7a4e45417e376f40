"""Model specs and loading with transformers (a local dir or a hub id), offline-safe."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(Exception):
    """The model could not be loaded; the message says which and why, in one line."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    path: str  # local dir or hub id
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"model {self.name!r}: dtype must be one of {', '.join(DTYPES)}")


def load(spec: ModelSpec) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer). A hub id is only tried when the hub is allowed
    (HF_HUB_OFFLINE unset); offline, a missing local dir fails at once with its name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(spec.path).is_dir()
    if not local and (spec.path.count("/") != 1 or spec.path.startswith((".", "/"))):
        raise ModelLoadError(f"model {spec.name!r}: no checkpoint directory at {spec.path}")
    if not local and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelLoadError(
            f"model {spec.name!r}: {spec.path!r} is not a local directory and HF_HUB_OFFLINE=1"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path)
        model: Any = AutoModelForCausalLM.from_pretrained(spec.path, dtype=DTYPES[spec.dtype])
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model {spec.name!r} at {spec.path!r}: {first}") from exc
    model = model.to(spec.device).eval()
    return model, tokenizer


def fingerprint(path: str, ignore: tuple[str, ...] = ()) -> str:
    """A content fingerprint of a checkpoint dir (or `hub:<id>` for a hub id).

    Files up to 64 MiB are hashed whole; larger ones by name, size and their first and
    last 16 MiB, so fingerprinting a 15 GB checkpoint takes a second, not a minute.
    Files named in `ignore` (bookkeeping such as timings) do not count."""
    root = Path(path)
    if not root.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for file in sorted(f for f in files if f.name not in ignore):
        size = file.stat().st_size
        h.update(f"{file.relative_to(root)}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= 64 << 20:
                h.update(f.read())
            else:
                h.update(f.read(16 << 20))
                f.seek(-(16 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()[:20]
