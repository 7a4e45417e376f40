"""The baseline's log-probs on disk, addressed by item index, as numpy arrays: packed full
rows (uint16 codes on a per-row grid, with the row's floor and step: `harness.run.probes.pack`
says how a row is packed) or top-k rows (k ids, k log-probs, the log of the rest). The run
stage packs and unpacks tensors around it (`harness.run.probes.LogprobStore`); what is kept,
how it is appended batch by batch with a checksum per journalled batch, how a killed run's
files are checked and cut, and how they are read back through memory maps is here."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np

from harness.records.errors import writing
from harness.records.settings import DEFAULT_TOP_K, StoreKind

GB = 1e9

log = logging.getLogger(__name__)


class PackedRows(NamedTuple):
    """Full rows [n, V] packed: uint16 codes, and per row the float32 floor and step."""

    codes: np.ndarray
    floor: np.ndarray
    step: np.ndarray


class TopKRows(NamedTuple):
    """Top-k rows: ids [n, k], their log-probs [n, k], the log of the rest's mass [n]."""

    ids: np.ndarray
    logp: np.ndarray
    tail: np.ndarray


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a baseline store will keep (`[distribution]`), decided once the first rows show
    the vocabulary: `positions` is how many rows the run can write at most (each item's
    token limit, plus its stop id)."""

    store: StoreKind = "full"
    top_k: int = DEFAULT_TOP_K
    max_bytes: float = float("inf")
    positions: int = 0

    def decide(self, vocab: int) -> int | None:
        """The k to keep, or None for full rows."""
        if self.store == "top-k" or (
            self.store == "auto" and self.positions * full_row_bytes(vocab) > self.max_bytes
        ):
            return min(self.top_k, vocab)
        return None


def full_row_bytes(vocab: int) -> int:
    return 2 * vocab + 8


def top_k_row_bytes(k: int) -> int:
    return 8 * k + 4


def _top_k_dtype(k: int) -> np.dtype:
    return np.dtype([("ids", "<i4", (k,)), ("logp", "<f4", (k,)), ("tail", "<f4")])


class LogprobFiles:
    """The baseline's log-probs on disk, addressed by item index: full packed rows
    (`<stem>.codes`, uint16, and `<stem>.rows`, float32 floor and step per row) or top-k rows
    (`<stem>.topk`: per row k int32 ids, k float32 log-probs, the float32 log of the rest),
    and `<stem>.json` (vocab size, k, item -> first row and row count). Appended batch by batch
    as generation goes, read back through memory maps: memory stays flat as the eval set
    grows."""

    def __init__(self, stem: Path, plan: StorePlan | None = None) -> None:
        self.stem = stem
        self.plan = plan or StorePlan()
        self.index: dict[int, tuple[int, int]] = {}
        self.vocab = 0
        self.top_k: int | None = None  # decided by the plan at the first rows
        self._rows = 0
        self._files: list[Any] | None = None
        self._maps: list[np.ndarray] | None = None
        self._segment: list[Any] = []  # sha256 of what was appended since the last
        # checkpoint, per file: a journal line records it, and a resume checks it

    @classmethod
    def open(cls, stem: Path) -> Self:
        """A store written earlier (and closed), for reading."""
        meta = json.loads(Path(f"{stem}.json").read_text())
        store = cls(stem)
        store.vocab = int(meta["vocab"])
        store.top_k = None if meta.get("top_k") is None else int(meta["top_k"])
        store.index = {int(k): (int(v[0]), int(v[1])) for k, v in meta["index"].items()}
        store._rows = max((a + n for a, n in store.index.values()), default=0)
        return store

    def _layout(self, vocab: int, top_k: int | None) -> list[tuple[Path, int]]:
        """Its files with their bytes per row."""
        if top_k is None:
            return [
                (Path(f"{self.stem}.codes"), 2 * vocab),
                (Path(f"{self.stem}.rows"), 8),
            ]
        return [(Path(f"{self.stem}.topk"), top_k_row_bytes(top_k))]

    def _open(self, mode: str) -> None:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self._files = [open(f, mode) for f, _ in self._layout(self.vocab, self.top_k)]  # noqa: SIM115
        self._segment = [hashlib.sha256() for _ in self._files]

    def begin(self, vocab: int) -> int | None:
        """The k this store keeps (None: full rows), decided by its plan at the first rows
        (which show the vocabulary) and said once; its files opened for appending."""
        if self._files is None:
            self.vocab = vocab
            self.top_k = self.plan.decide(vocab)
            self._announce()
            self._open("wb")
        elif vocab != self.vocab:
            raise ValueError(f"{self.stem}: rows of {vocab} after rows of {self.vocab}")
        return self.top_k

    def _encode(self, rows: PackedRows | TopKRows) -> tuple[int, list[bytes]]:
        if isinstance(rows, PackedRows):
            if self.top_k is not None:
                raise ValueError(f"{self.stem}: full rows given to a top-{self.top_k} store")
            meta = np.stack([rows.floor, rows.step], axis=1).astype(np.float32)
            codes = np.asarray(rows.codes, dtype=np.uint16)  # no copy: `pack` gives uint16
            return len(codes), [codes.tobytes(), meta.tobytes()]
        if self.top_k is None:
            raise ValueError(f"{self.stem}: top-k rows given to a store of full rows")
        packed = np.zeros(len(rows.ids), dtype=_top_k_dtype(self.top_k))
        packed["ids"], packed["logp"], packed["tail"] = rows.ids, rows.logp, rows.tail
        return len(rows.ids), [packed.tobytes()]

    def write(self, item: int, rows: PackedRows | TopKRows) -> None:
        """One item's rows, appended (after `begin`)."""
        if self._files is None:
            raise ValueError(f"{self.stem}: written before `begin`")
        n, chunks = self._encode(rows)
        for f, h, chunk in zip(self._files, self._segment, chunks, strict=True):
            with writing(f.name):
                f.write(chunk)
            h.update(chunk)
        self.index[item] = (self._rows, n)
        self._rows += n

    def _announce(self) -> None:
        n, full = self.plan.positions, full_row_bytes(self.vocab)
        if not n:
            return
        if self.top_k is None:
            log.info(
                "baseline log-probs: full rows of %d, at most %.2f GB for %d positions",
                self.vocab,
                n * full / GB,
                n,
            )
        else:
            log.info(
                "baseline log-probs: top-%d rows, at most %.3f GB for %d positions "
                "(full rows would take %.2f GB); KLDs are lower bounds",
                self.top_k,
                n * top_k_row_bytes(self.top_k) / GB,
                n,
                n * full / GB,
            )

    def checkpoint(self) -> dict[str, Any]:
        """Flush and fsync what was appended: the rows a journal line may then count on, with
        the sha256 of the bytes appended since the last checkpoint."""
        for f in self._files or []:
            with writing(f.name):
                f.flush()
                os.fsync(f.fileno())
        sums = [h.hexdigest() for h in self._segment]
        self._segment = [hashlib.sha256() for _ in self._segment]
        return {"rows": self._rows, "vocab": self.vocab, "top_k": self.top_k, "sha256": sums}

    def intact(self, states: Sequence[dict[str, Any]]) -> int:
        """How many of a journal's checkpoints (`states`, in order) the files on disk still
        hold byte for byte: a resume keeps those batches and makes the rest again."""
        if not states:
            return 0
        top_k = states[0].get("top_k")
        layout = self._layout(int(states[0]["vocab"]), top_k)
        if not all(f.is_file() for f, _ in layout):
            return 0
        start = 0
        handles = [open(f, "rb") for f, _ in layout]  # noqa: SIM115
        try:
            for k, state in enumerate(states):
                n = int(state["rows"]) - start
                if n < 0 or state.get("top_k") != top_k:
                    return k
                got = [
                    hashlib.sha256(h.read(n * size)).hexdigest()
                    for h, (_, size) in zip(handles, layout, strict=True)
                ]
                if got != state.get("sha256"):
                    return k
                start = int(state["rows"])
        finally:
            for h in handles:
                h.close()
        return len(states)

    def resume(
        self, rows: int, vocab: int, index: dict[int, tuple[int, int]], top_k: int | None = None
    ) -> None:
        """Continue a store a killed run left: keep its first `rows` rows (what its journal
        counted), cut whatever it wrote after, and append from there."""
        if rows == 0:
            return
        self.vocab, self.top_k, self.index, self._rows = vocab, top_k, dict(index), rows
        layout = self._layout(vocab, top_k)
        if any(f.stat().st_size < rows * size for f, size in layout):
            raise OSError(f"{self.stem}: shorter than its journal says")
        self._open("r+b")
        assert self._files is not None
        for f, (_, size) in zip(self._files, layout, strict=True):
            f.truncate(rows * size)
            f.seek(rows * size)

    def close(self) -> None:
        for f in self._files or []:
            with writing(f.name):
                f.close()
        self._files = None
        meta = {
            "vocab": self.vocab,
            "top_k": self.top_k,
            "index": {str(k): v for k, v in self.index.items()},
        }
        with writing(f"{self.stem}.json"):
            Path(f"{self.stem}.json").write_text(json.dumps(meta) + "\n")
        if self.plan.positions:
            size = self.size()
            log.info(
                "baseline log-probs: %.3f GB on disk (%d bytes) for %d positions",
                size / GB,
                size,
                self._rows,
            )

    def size(self) -> int:
        """Bytes its row files take."""
        return sum(f.stat().st_size for f, _ in self._layout(self.vocab, self.top_k) if f.is_file())

    def read(self, item: int) -> PackedRows | TopKRows:
        """One item's rows as written: packed full rows, or top-k rows (ids checked to lie in
        the vocabulary)."""
        start, n = self.index[item]
        if self._maps is None:
            if self.top_k is None:
                self._maps = [
                    np.memmap(
                        f"{self.stem}.codes",
                        dtype=np.uint16,
                        mode="r",
                        shape=(self._rows, self.vocab),
                    ),
                    np.memmap(
                        f"{self.stem}.rows", dtype=np.float32, mode="r", shape=(self._rows, 2)
                    ),
                ]
            else:
                kind = _top_k_dtype(self.top_k)
                self._maps = [
                    np.memmap(f"{self.stem}.topk", dtype=kind, mode="r", shape=(self._rows,))
                ]
        if self.top_k is not None:
            rows = np.asarray(self._maps[0][start : start + n])
            raw = rows["ids"]
            if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= self.vocab):
                raise OSError(f"{self.stem}.topk: a token id outside the vocabulary")
            return TopKRows(
                raw.astype(np.int64),
                rows["logp"].astype(np.float64),
                rows["tail"].astype(np.float64),
            )
        codes, meta = self._maps
        return PackedRows(
            np.asarray(codes[start : start + n]),
            np.asarray(meta[start : start + n, 0]),
            np.asarray(meta[start : start + n, 1]),
        )
