"""Model sizes from the files on disk (no torch): weights bytes and parameter counts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def weights_bytes(path: str) -> int | None:
    """Bytes of a checkpoint's weight files (a dir's *.safetensors/*.bin/..., or one GGUF
    file); None for what is not on disk (a hub id, a server)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    if not root.is_dir():
        return None
    files = [p for p in root.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return sum(p.stat().st_size for p in files) if files else None


def _safetensors_params(file: Path) -> int:
    """Elements of every tensor in a safetensors file, from its JSON header."""
    with open(file, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > file.stat().st_size - 8:  # a hostile length is never allocated
            raise ValueError(f"{file}: a header of {size:,} bytes runs past the file's end")
        header = json.loads(f.read(size))
    count = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in entry["shape"]:
            n *= int(dim)
        count += n
    return count


def parameter_count(path: str) -> int | None:
    """The parameters of an unquantized checkpoint: safetensors headers, or a GGUF's tensor
    shapes; None when neither is there."""
    root = Path(path)
    if root.is_file() and root.suffix == ".gguf":
        from gguf import GGUFReader

        return sum(int(t.n_elements) for t in GGUFReader(str(root)).tensors)
    if root.is_dir():
        files = sorted(root.glob("*.safetensors"))
        if files:
            return sum(_safetensors_params(f) for f in files)
    return None


def tensor_names(path: str) -> list[str]:
    """Tensor names of a safetensors checkpoint dir, from the headers."""
    names: list[str] = []
    for file in sorted(Path(path).glob("*.safetensors")):
        with open(file, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            names += [n for n in json.loads(f.read(size)) if n != "__metadata__"]
    return names
