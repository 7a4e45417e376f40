"""The run cache: what one model produced on one eval set, kept across runs.

A ladder runs the same baseline against many rungs, and is rerun with a rung added or after
a kill; none of that should generate with a model twice. Each finished model run is kept in
`.cache/harness/runs/<key>/`, a run folder of its own holding that one model under the name
`model` (generations, per-token distances, reference NLLs, lm-eval samples; for a baseline
also its packed log-probs, prompt ids and stop ids), plus `entry.json`, written last.

The key of a baseline is everything its outputs depend on: the checkpoint's content
fingerprint, the items (their content, in order), the generation settings, the engine and
its settings, the lm-eval tasks. A candidate's key adds its own fingerprint and engine to
its baseline's key (its per-token distances are measured against that baseline).

Every compare works through it, so a run killed at any point resumes: an entry is built in
a work folder (`.work-<key>`) held by one process at a time (a lock beside it; a second run
asking for the same key waits, then reads what the first made). As the model generates,
each finished batch (its output ids, and its probe results: per-token distances, NLLs, the
baseline's packed log-probs flushed to disk) is appended to the folder's journal; a rerun
after a kill reuses every journalled batch and generates only the rest, in the same batches.
When the model is done, `entry.json` is written last and the folder renamed into place whole.
A compare keeps every model's entry (a config with one candidate more runs that one alone)
but the noise floor's, dropped once its report is published (it is there to be measured
again); a ladder keeps them all. Models that cannot be fingerprinted
by content (a server, a hub id) are never cached, and not resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.records import (
    DistributionSettings,
    EvalItem,
    GenerationSettings,
    LmEvalSettings,
    ModelSpec,
    home,
)
from harness.records.codec import to_json
from harness.records.errors import HarnessError, writing
from harness.records.results import item_to_json
from harness.store import entry
from harness.store.filelock import hold, is_held
from harness.store.rundir import RunDir, dumps, write_atomic
from harness.store.sealed import SUM, is_sealed, seal

logger = logging.getLogger(__name__)
FORMAT = 5  # bumped when what an entry holds, or how outputs are made, changes
ENTRY = "entry.json"
WORK = ".work-"  # a key's work folder: what a killed run finished, batch by batch
JOURNAL = "journal.jsonl"
MODEL = "model"  # the model's name inside an entry


class RunCacheError(HarnessError):
    """A run cache entry cannot be read."""


def cacheable(fingerprint: str, in_process: bool) -> bool:
    """Only checkpoints fingerprinted by their content, run in this process (a server's
    answers can change behind the same name)."""
    return in_process and not fingerprint.startswith("hub:")


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def engine_settings(spec: ModelSpec) -> dict[str, Any]:
    """What of a model spec changes its outputs (not its name, not its path); an engine's
    own settings when it has any."""
    out = {
        "backend": spec.backend,
        "dtype": spec.dtype,
        "device": spec.device,
        "threads": spec.threads,
        "context": spec.context,
    }
    if spec.chat_template is not None:  # the prompt ids change with the template's text
        out["chat_template"] = hashlib.sha256(Path(spec.chat_template).read_bytes()).hexdigest()
    if spec.settings is not None:
        out["settings"] = to_json(spec.settings)
    return out


def baseline_key(
    spec: ModelSpec,
    fingerprint: str,
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    lm_eval: LmEvalSettings | None,
    role: str = "baseline",
    store: DistributionSettings | None = None,
) -> str:
    """`role`: "baseline", or "signals" (the baseline's mining run over a traffic pool,
    `harness.run.mining`: its outputs and per-item signals, no log-probs). `store`: how its
    log-probs are kept, when `settings.distribution` keeps them (a full store keys as none
    named, as it always has; a lockstep run's entry keeps none)."""
    key = {
        "format": FORMAT,
        "role": role,
        "fingerprint": fingerprint,
        "engine": engine_settings(spec),
        "items": [item_to_json(i) for i in items],
        "generation": to_json(settings),
        "lm_eval": to_json(lm_eval),
    }
    if (
        settings.distribution
        and store is not None
        and (store.store, store.mode) != ("full", "stored")
    ):
        key["store"] = to_json(store)
    return _digest(key)


def candidate_key(spec: ModelSpec, fingerprint: str, base_key: str, role: str = "candidate") -> str:
    """`role`: "candidate", or "noise-floor" (the baseline run again, kept apart from a
    candidate that happens to be the baseline's checkpoint)."""
    return _digest(
        {
            "format": FORMAT,
            "role": role,
            "fingerprint": fingerprint,
            "engine": engine_settings(spec),
            "baseline": base_key,
        }
    )


def _shaped(record: dict[str, Any]) -> bool:
    """A journal line's batch: rows of [prompt index, output ids, stop id or null]."""
    rows = record.get("rows")
    return isinstance(rows, list) and all(
        isinstance(r, list)
        and len(r) == 3
        and isinstance(r[0], int)
        and isinstance(r[1], list)
        and all(isinstance(t, int) for t in r[1])
        and (r[2] is None or isinstance(r[2], int))
        for r in rows
    )


class Journal:
    """The finished batches of one model's run, one sealed JSON line each (`harness.store.sealed`:
    the line carries the checksum of its content), appended, flushed and fsynced as each
    batch finishes: what a rerun after a kill starts from. A line cut short by a kill is
    dropped; a line that is not what was written (garbled, emptied, an id changed) is said,
    and it and every line after it are dropped: those batches are made again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.batches: list[dict[str, Any]] = []
        self._ends: list[int] = []  # the byte offset where each batch's line ends
        if not path.is_file():
            return
        data = path.read_bytes()
        good = 0
        for number, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break  # cut short by a kill: nothing to say
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not is_sealed(record) or not _shaped(record):
                logger.warning(
                    "%s:%d: not the batch that was written (a damaged journal); it "
                    "and the batches after it are made again",
                    path,
                    number,
                )
                break
            record.pop(SUM)
            self.batches.append(record)
            good += len(line)
            self._ends.append(good)
        if good < len(data):
            self._truncate(good)

    def _truncate(self, size: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

    def keep(self, n: int, why: str) -> None:
        """Keep the first `n` batches only (the rest are made again), saying why."""
        if n >= len(self.batches):
            return
        logger.warning(
            "%s: %s from batch %d on; %d of %d batches are made again",
            self.path,
            why,
            n + 1,
            len(self.batches) - n,
            len(self.batches),
        )
        self._truncate(self._ends[n - 1] if n else 0)
        del self.batches[n:], self._ends[n:]

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(seal(record), ensure_ascii=False).encode("utf-8") + b"\n"
        with writing(self.path, " (the batches before it are kept)"):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, self._ends[-1] if self._ends else 0)  # no half line kept
                raise
            finally:
                os.close(fd)
        self.batches.append(record)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(line))


class ModelSession:
    """One model's entry in the cache, held by this process: the whole of what the run stage
    asks of the cache for a model. Its complete entry when there is one (`found`); else the
    batches a killed run finished (`done_batches`), each batch recorded as it finishes
    (`record`), a work folder (`work`, kept across kills) for what the model writes, and
    `commit` when it is done."""

    def __init__(self, cache: RunCache, key: str, keep: bool = False) -> None:
        self.cache, self.key = cache, key
        self.keep = cache.keep or keep
        self.found = cache.lookup(key)
        if self.found is not None and not cache.reading(self.found, self.keep):
            self.found = None  # dropped by another run just now: made again
        self.reused = self.found is not None
        self._work: RunDir | None = None
        self._journal: Journal | None = None

    @property
    def work(self) -> RunDir:
        if self._work is None:
            folder = self.cache.root / f"{WORK}{self.key}"
            folder.mkdir(parents=True, exist_ok=True)
            self._work = RunDir(folder)
        return self._work

    def _log(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.work.root / JOURNAL)
        return self._journal

    @property
    def done_batches(self) -> list[dict[str, Any]]:
        """The batches a killed run finished (each as `record` was given it), in order."""
        return self._log().batches

    def keep_batches(self, n: int, why: str) -> None:
        """Keep the first `n` finished batches only: the rest are made again (`why`, said)."""
        self._log().keep(n, why)

    def record(self, batch: dict[str, Any]) -> None:
        """A batch finished: on disk (fsynced) before the next one starts."""
        self._log().append(batch)

    def discard_if_empty(self) -> None:
        """A run that failed before its first batch (a model that would not load) leaves no
        work folder behind: there is nothing in it to resume from."""
        if self._work is not None and not Journal(self._work.root / JOURNAL).batches:
            shutil.rmtree(self._work.root, ignore_errors=True)

    def commit(self, meta: dict[str, Any]) -> tuple[RunDir, dict[str, Any]]:
        """Write `entry.json` last (sealed, with the sha256 of every file of the entry), then
        rename the work folder into place."""
        tmp = self.work.root
        (tmp / JOURNAL).unlink(missing_ok=True)
        meta = {"format": FORMAT, "key": self.key, "keep": self.keep} | meta
        meta = entry.write_seal(tmp, ENTRY, meta)
        final = self.cache.root / self.key
        if final.exists() and self.cache.lookup(self.key) is not None:
            # made meanwhile by a run that did not hold the key (an old one): that one is used
            shutil.rmtree(tmp, ignore_errors=True)
            found = self.cache.lookup(self.key)
            if found is None:
                raise RunCacheError(f"{final}: the entry vanished after it was written")
        else:
            entry.install(tmp, final)
            found = RunDir(final), meta
        self.found = found
        return found


class RunCache:
    """Entries by key under `root`. `keep`: entries this run uses stay after it (a ladder,
    an explicit --run-cache); else the entries a run made only to resume from are dropped
    once its report is published (`drop_transient`)."""

    def __init__(self, root: Path | None = None, keep: bool = True) -> None:
        self.root, self.keep = root or home.runs(), keep
        self.transient: list[str] = []
        # A shared flock on the entry.json of every entry this run reads, held until it ends:
        # another run's `drop_transient` leaves an entry alone while anyone reads it.
        self._reading: list[int] = []

    def lookup(self, key: str, heal: bool = True) -> tuple[RunDir, dict[str, Any]] | None:
        """A complete entry (its folder and `entry.json`), or None. An entry is trusted only
        whole: its entry.json sealed and of this version, every file it records there with
        the same sha256. A damaged one is said in one line naming what differs and (`heal`)
        removed, so that the caller makes it again; never read, never a lasting failure."""
        folder = self.root / key
        if not folder.is_dir():
            return None
        meta, why = entry.check(folder, ENTRY)
        if meta is not None and (meta.get("format") != FORMAT or meta.get("key") != key):
            meta, why = None, f"{ENTRY} is of another version or key"
        if meta is not None:
            return RunDir(folder), meta
        logger.warning(
            "%s: damaged run-cache entry (%s); %s",
            folder,
            why,
            "it is made again" if heal else "not used",
        )
        if heal:
            entry.remove(folder)
        return None

    @contextlib.contextmanager
    def session(self, key: str, what: str, keep: bool = False) -> Iterator[ModelSession]:
        """Hold `key` for the body: a second process asking for it waits (`what`: the model),
        then finds the entry the first made, or resumes from where it was killed. `keep`:
        the entry stays after this run whatever the cache's own `keep` (a baseline's)."""
        self.clean()
        lock = self.root / f"{WORK}{key}.lock"
        with hold(lock, wait=True, what=f"which is running {what} on the same items", remove=True):
            session = ModelSession(self, key, keep)
            try:
                yield session
            except BaseException:
                session.discard_if_empty()
                raise
            if session.found is not None and not session.reused:  # made now
                self.reading(session.found, session.keep)

    def reading(self, found: tuple[RunDir, dict[str, Any]], keep: bool | None = None) -> bool:
        """Mark an entry as read by this run until it ends (False: it is gone). A ladder
        (or `keep`) keeps it from now on; a plain compare drops it once done, unless kept."""
        entry, meta = found
        path = entry.root / ENTRY
        keep = self.keep if keep is None else keep
        if keep and not meta.get("keep", True):
            write_atomic(path, dumps(seal(meta | {"keep": True})))
        elif not meta.get("keep", True):
            self.transient.append(str(meta["key"]))
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits while a run drops it (then it is gone)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        self._reading.append(fd)
        return True

    def drop_transient(self) -> None:
        """Remove the entries this run used that no ladder asked to keep (and that no other
        run is reading: those go in a later run's `clean`)."""
        for fd in self._reading:
            os.close(fd)
        self._reading = []
        for key in self.transient:
            _drop_unread(self.root / key)
        self.transient = []

    def clean(self) -> None:
        """Remove what killed runs left: entries being removed or installed by a process that
        is gone (`entry.sweep`); work folders no one has touched for a week; entries a plain
        compare made and could not drop (another run was reading them), a week on."""
        if not self.root.is_dir():
            return
        entry.sweep(self.root)
        week = time.time() - 7 * 86400
        for work in self.root.glob(f"{WORK}*"):
            if (
                work.is_dir()
                and work.stat().st_mtime < week
                and not is_held(work.with_name(work.name + ".lock"))
            ):
                shutil.rmtree(work, ignore_errors=True)
        for folder in self.root.iterdir():
            meta = folder / ENTRY
            if not folder.name.startswith(".") and meta.is_file() and meta.stat().st_mtime < week:
                with contextlib.suppress(OSError, ValueError):
                    if not json.loads(meta.read_text()).get("keep", True):
                        _drop_unread(folder)


def _drop_unread(folder: Path) -> None:
    """Remove an entry unless some run holds it for reading (a shared flock on entry.json)."""
    try:
        fd = os.open(folder / ENTRY, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    with contextlib.suppress(OSError, ValueError):  # a ladder may have kept it meanwhile
        if json.loads((folder / ENTRY).read_text()).get("keep", True):
            os.close(fd)
            return
    try:
        entry.remove(folder)  # renamed away first: a reader finds it whole or not at all
    finally:
        os.close(fd)
