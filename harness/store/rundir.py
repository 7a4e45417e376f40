"""The run folder, and its only reader and writer.

```
reports/<run>/
  run.json                       RunRecord: config as resolved, items, models, hashes
  generations/<model>.jsonl      each model's greedy outputs (ids and per-id text)
  distribution/<model>.jsonl     a candidate's per-token distances to the baseline
  distribution/<model>.reference.json   per-item reference NLL of one model
  lm_eval/<model>.jsonl          lm-eval per-sample results, when tasks are configured
  meaning/<model>.json           embedding similarity to the baseline, reference-free items
  review.json                    merged hand-review verdicts (`harness review import`)
  results.json items.csv junit.xml summary.md report.html   derived, rebuilt by `report`
  scratch/                       the baseline's packed log-probs while candidates run
```

Every file is written whole to a temporary sibling, flushed and renamed into place, so a
reader never sees half a file. `compare` builds the folder under a staging name next to its
target and renames it into place when complete.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.inputs.evalset import parse_item
from harness.records import EvalItem, Generation, ModelRun, Sample, TokenStats
from harness.records.codec import CodecError, from_json, to_json
from harness.records.errors import FULL, DiskFull, HarnessError, RecordError, writing
from harness.records.results import Results, RunRecord
from harness.records.review import Reviews
from harness.store import faults
from harness.store.destinations import unsafe_target
from harness.store.filelock import Busy, hold

ARTIFACTS = ("results.json", "items.csv", "junit.xml", "summary.md", "report.html")
# `write_all`'s temporary names: "." + the file's name + "." + mkstemp's 8 random characters
_TEMP = re.compile(r"\.[\w.]+\.[a-z0-9_]{8}")
# `staging_for`'s and `publish`'s folders beside `out`: mkdtemp's name, `.<out>.<what>-<8>`
_TEMP_DIR = re.compile(r"\..+\.(?:staging|old)-[a-z0-9_]{8}")


class RunFolderError(HarnessError):
    """The run folder is missing a file or holds one this version cannot read."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a new temporary sibling (an unguessable name, created exclusively: a
    planted link is never followed), fsync it and rename it over `path`."""
    write_all({path: text})


def write_all(texts: dict[Path, str]) -> None:
    """`write_atomic` for several files that belong together: every temporary file is written
    and fsynced before the first is renamed, so a full disk (or any failure writing) leaves
    every file as it was, never some old and some new."""
    temps: dict[Path, str] = {}
    current = next(iter(texts))
    try:
        for path, text in texts.items():
            current = path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            temps[path] = tmp
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is as any file
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
            faults.point("report")
    except BaseException as exc:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in FULL:
            raise DiskFull(
                f"{current}: cannot be written: {exc.strerror} (nothing was replaced)"
            ) from exc
        raise


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def dumps(data: Any) -> str:
    """The JSON text of every .json file of the run folder."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(
            f"{path}: missing; is this a run folder written by `harness compare`?"
        ) from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def _read_jsonl(path: Path, what: str) -> list[Any]:
    if not path.is_file():
        raise RunFolderError(f"{path}: missing {what}")
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        return [json.loads(line) for line in lines if line]
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: invalid JSON: {exc.msg}") from None


def _write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


class RunDir:
    """One run folder: every path, writer and reader."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- paths --------------------------------------------------------------------------

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def reviews_json(self) -> Path:
        return self.root / "review.json"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def logprob_stem(self) -> Path:
        """Where the baseline's packed log-probs live while the candidates run."""
        return self.scratch / "baseline-logprobs"

    def generations(self, model: str) -> Path:
        return self.root / "generations" / f"{model}.jsonl"

    def token_stats(self, model: str) -> Path:
        return self.root / "distribution" / f"{model}.jsonl"

    def reference_nll(self, model: str) -> Path:
        return self.root / "distribution" / f"{model}.reference.json"

    def meaning(self, model: str) -> Path:
        return self.root / "meaning" / f"{model}.json"

    def samples(self, model: str) -> Path:
        return self.root / "lm_eval" / f"{model}.jsonl"

    def artifact(self, name: str) -> Path:
        return self.root / name

    # --- what the run stage writes, model by model ----------------------------------------

    def write_generations(self, run: ModelRun) -> None:
        _write_jsonl(
            self.generations(run.name),
            (
                {
                    "id": g.item_id,
                    "output": g.output,
                    "output_ids": list(g.output_ids),
                    "output_tokens": list(g.output_tokens),
                    "cut_off": g.cut_off,
                }
                | ({} if g.prompt_tokens is None else {"prompt_tokens": g.prompt_tokens})
                for g in run.generations
            ),
        )

    def write_samples(self, model: str, samples: Sequence[Sample]) -> None:
        _write_jsonl(self.samples(model), (to_json(s) for s in samples))

    def write_token_stats(
        self, model: str, items: Sequence[EvalItem], stats: Sequence[TokenStats]
    ) -> None:
        rows = ({"id": i.id} | to_json(s) for i, s in zip(items, stats, strict=True))
        _write_jsonl(self.token_stats(model), rows)

    def write_reference_nll(self, model: str, nll: dict[str, float]) -> None:
        write_atomic(self.reference_nll(model), json.dumps(nll) + "\n")

    def write_meaning(self, model: str, similarity: dict[str, float]) -> None:
        write_atomic(self.meaning(model), json.dumps(similarity) + "\n")

    def read_meaning(self, model: str) -> dict[str, float]:
        """Embedding similarity per reference-free item whose output differs ({} if none)."""
        path = self.meaning(model)
        if not path.is_file():
            return {}
        try:
            similarity: dict[str, float] = from_json(dict[str, float], read_json(path))
        except CodecError as exc:
            raise RunFolderError(f"{path}: {exc}") from None
        return similarity

    def adopt(self, entry: RunDir, model: str, name: str) -> None:
        """A model's outputs from a run-cache entry (where it is named `model`) into this
        folder under `name`, written once: hard links where the two share a filesystem (the
        entry's files are never changed in place, and this folder's are replaced by rename,
        so neither sees the other change), copies where they do not. The run folder stays
        whole when the cache is cleaned; a file edited in place here (an editor that writes
        through the link) changes the entry too, which the cache's checksums then find
        damaged and make again."""
        for path in (RunDir.generations, RunDir.token_stats, RunDir.reference_nll, RunDir.samples):
            source, target = path(entry, model), path(self, name)
            if not source.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            with writing(target, " (nothing was replaced)"):
                try:
                    os.link(source, target)
                except OSError:  # another filesystem, or one without hard links
                    shutil.copyfile(source, target)

    def remove_scratch(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    # --- the records ----------------------------------------------------------------------

    def write_run(self, run: RunRecord) -> None:
        write_atomic(self.run_json, dumps(run.to_json()))

    def read_run(self) -> RunRecord:
        try:
            return RunRecord.from_json(read_json(self.run_json), parse_item)
        except (CodecError, RecordError) as exc:
            raise RunFolderError(f"{self.run_json}: {exc}") from None

    def read_reviews(self) -> Reviews:
        if not self.reviews_json.is_file():
            return Reviews()
        try:
            reviews: Reviews = from_json(Reviews, read_json(self.reviews_json))
        except CodecError as exc:
            raise RunFolderError(f"{self.reviews_json}: {exc}") from None
        return reviews

    def read_results(self) -> Results:
        path = self.artifact("results.json")
        try:
            return Results.from_json(read_json(path))
        except (CodecError, RecordError) as exc:
            raise RunFolderError(f"{path}: {exc}") from None

    def write_artifacts(self, texts: dict[str, str], reviews: Reviews | None = None) -> None:
        """Every derived file (and with `reviews`, review.json: the verdicts they were derived
        with) written together: all or none."""
        files = {}
        if reviews is not None:  # renamed first: the artifacts are derived from it
            files[self.reviews_json] = dumps(to_json(reviews))
        files |= {self.artifact(name): texts[name] for name in ARTIFACTS}
        write_all(files)

    # --- what the analysis reads ----------------------------------------------------------

    def read_generations(self, model: str, items: Sequence[EvalItem]) -> list[Generation]:
        """A model's generations, with its reference NLLs where the run measured them."""
        path = self.generations(model)
        rows = _read_jsonl(path, "generations file")
        if [r.get("id") for r in rows] != [i.id for i in items]:
            raise RunFolderError(f"{path}: items do not match run.json")
        ref = self.reference_nll(model)
        nll = read_json(ref) if ref.is_file() else {}
        return [
            Generation(
                item_id=r["id"],
                output=r["output"],
                output_ids=tuple(r["output_ids"]),
                output_tokens=tuple(r["output_tokens"]),
                reference_nll=nll.get(r["id"]),
                cut_off=bool(r.get("cut_off", False)),
                prompt_tokens=r.get("prompt_tokens"),
            )
            for r in rows
        ]

    def read_token_stats(self, model: str, items: Sequence[EvalItem]) -> list[TokenStats] | None:
        """A candidate's per-token distances, or None when the run did not measure them."""
        path = self.token_stats(model)
        if not path.is_file():
            return None
        rows = _read_jsonl(path, "token stats")
        if [r.pop("id", None) for r in rows] != [i.id for i in items]:
            raise RunFolderError(f"{path}: items do not match run.json")
        try:
            return [from_json(TokenStats, r) for r in rows]
        except CodecError as exc:
            raise RunFolderError(f"{path}: {exc}") from None

    def read_samples(self, model: str) -> list[Sample]:
        path = self.samples(model)
        try:
            return [from_json(Sample, r) for r in _read_jsonl(path, "lm-eval samples")]
        except CodecError as exc:
            raise RunFolderError(f"{path}: {exc}") from None


MARKER = ".harness-run"  # in every run folder: what `--out` may replace


def is_run_folder(folder: Path) -> bool:
    """A folder the harness wrote: its marker, or run.json and results.json together (run
    folders written before the marker existed hold only those)."""
    return (folder / MARKER).is_file() or (
        (folder / "run.json").is_file() and (folder / "results.json").is_file()
    )


def check_out(out: Path) -> None:
    """Refuse a run folder target that would replace anything but a previous run: the working
    directory or any folder above it, /, the home folder, a file, a symbolic link, or a
    folder holding files that are not a harness run's."""
    if (why := unsafe_target(out, "a run ")) is not None:
        default = " (reports/<name> by default)" if why.startswith("it holds") else ""
        raise RunFolderError(f"--out {out}: {why}{default}")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out}: a file, not a run folder")
    if out.is_dir() and any(out.iterdir()) and not is_run_folder(out):
        raise RunFolderError(
            f"--out {out}: a folder that is not a harness run folder (no "
            f"{MARKER}); it is left as it is: give another --out"
        )


@contextlib.contextmanager
def locked(out: Path, wait: bool = False, what: str = "") -> Iterator[None]:
    """Hold `.<name>.lock` next to `out` while the run folder is written: a compare (no
    `wait`) exits 2 naming the holder; a review import or a report rebuild (`wait`, `what`
    they do) waits its turn, so that no writer overwrites another's work. Leftovers of killed
    runs are cleaned while it is held."""
    lock = out.parent / f".{out.name}.lock"
    # Removed while held: a run that opened it meanwhile fails to lock and exits 2; one that
    # starts after finds no lock file and makes its own.
    try:
        with hold(lock, wait=wait, what=what, remove=True):
            clean_leftovers(out)
            yield
    except Busy as busy:
        raise RunFolderError(
            f"--out {out}: another harness run is writing it (pid {busy.holder}; lock {lock})"
        ) from None


def clean_leftovers(out: Path) -> None:
    """What killed runs left beside `out` (the caller holds the folder's lock, so no live run
    owns any of it): a previous run moved aside when a kill came between the two renames of
    `publish` goes back in place; staging folders and emptied aside folders go; inside `out`,
    the temporary files of a write a kill cut short (`write_all`'s `.<file>.<random>`). Only
    what the harness provably made is removed: a folder holding a run folder's marker, one
    of its own temporary names left empty, a temporary file of a run folder's own file."""
    aside = sorted(_ours(out.parent.glob(f".{out.name}.old-*")))
    if not out.exists():
        for old in aside:
            if is_run_folder(old / "run") and not (old / "run").is_symlink():
                (old / "run").rename(out)
                break
    staging = _ours(out.parent.glob(f".{out.name}.staging-*"))
    for old in aside:
        if is_run_folder(old / "run") and not (old / "run").is_symlink():
            shutil.rmtree(old / "run", ignore_errors=True)
        with contextlib.suppress(OSError):
            old.rmdir()  # only when empty: anything else in it is not ours
    for folder in staging:
        if (folder / MARKER).is_file():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                folder.rmdir()  # made, killed before its marker: empty
    if out.is_dir() and not out.is_symlink() and is_run_folder(out):
        for name in (*ARTIFACTS, "review.json", "run.json"):
            for temp in out.glob(f".{name}.*"):
                if temp.is_file() and not temp.is_symlink() and _TEMP.fullmatch(temp.name):
                    temp.unlink(missing_ok=True)


def _ours(paths: Iterable[Path]) -> list[Path]:
    """The folders among `paths` named as `staging_for` and `publish` name theirs."""
    return [p for p in paths if _TEMP_DIR.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def staging_for(out: Path) -> RunDir:
    """A new empty folder beside `out`, under a name no one can guess or plant a link at."""
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the published folder is as any
    (staging / MARKER).write_text("a harness run folder\n")
    return RunDir(staging)


def publish(staging: RunDir, out: Path) -> RunDir:
    """Move a complete run folder into place: a previous run is moved aside first, the new
    one renamed in, the old one removed last — at every instant one of them is whole."""
    aside = None
    if out.exists():
        aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        out.rename(aside / "run")
        faults.point("publish")
    staging.root.rename(out)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return RunDir(out)
