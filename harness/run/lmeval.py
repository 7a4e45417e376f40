"""lm-evaluation-harness interop; the only module that imports lm_eval.

- `run_tasks`: any lm-eval task on a backend the run stage already opened, through
  `BackendLM`, lm-eval's `LM` interface over the backend seam (so every engine runs them, on
  ids its own tokenizer made, with no second load); per-sample results kept
  (`log_samples=True`), reduced to `Sample` records that pair by doc id and doc hash with
  the other models' samples.
- `export_tasks`: our eval sets as lm-eval task YAMLs plus their data, so `lm_eval --model hf
  --tasks ... --include_path DIR` runs them with lm-eval's own command line.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.analysis.scorers import Scorer
from harness.records import LmEvalSettings, Sample
from harness.records.errors import HarnessError
from harness.run.backends.base import GenerateRequest

if TYPE_CHECKING:
    from harness.run.backends import Backend

# A sample's score is the first of these metrics it reports (bounded in [0, 1]).
SCORE_METRICS = ("acc", "exact_match", "acc_norm", "f1", "em")


class LmEvalError(HarnessError):
    """An lm-eval task could not be run; one line saying which and why."""


def backend_lm(backend: Backend, batch_size: int, chat: bool = False) -> Any:
    """An lm-eval `LM` that runs every request on `backend` (lm-eval imported here).

    It builds on lm-eval's `TemplateLM`, so requests are tokenized as lm-eval's own models
    do (the tokenizer's default special tokens, trailing context whitespace moved to the
    continuation, the end-of-text token as context when there is none); scoring and greedy
    generation go through the backend seam. Log-softmax runs in float32 whatever the
    model's dtype (lm-eval's `hf` model takes it in the model's dtype). With `chat`, lm-eval
    renders each request through the model's chat template (`apply_chat_template`), and the
    rendered text is encoded as it stands: the template already holds the special tokens."""
    from lm_eval.api.model import TemplateLM

    class BackendLM(TemplateLM):
        @property
        def eot_token_id(self) -> int:
            return backend.stop_ids[0]

        def tok_encode(
            self, string: str, add_special_tokens: bool | None = None, **kwargs: Any
        ) -> list[int]:
            special = add_special_tokens if add_special_tokens is not None else not chat
            return backend.encode(string, add_special=special)

        @property
        def tokenizer_name(self) -> str:
            return backend.spec.path.replace("/", "__")

        def chat_template(self, chat_template: bool | str = False) -> str | None:
            return backend.chat_template

        def apply_chat_template(
            self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
        ) -> str:
            return backend.render_chat(chat_history, add_generation_prompt)

        def _loglikelihood_tokens(self, requests: list[Any], **kwargs: Any) -> list[Any]:
            pairs = [(context, continuation) for _, context, continuation in requests]
            return backend.loglikelihood(pairs, batch_size)

        def loglikelihood_rolling(self, requests: list[Any], **kwargs: Any) -> list[float]:
            pairs = [
                ([self.prefix_token_id], self.tok_encode(r.args[0], add_special_tokens=False))
                for r in requests
            ]
            return [total for total, _ in backend.loglikelihood(pairs, batch_size)]

        def generate_until(self, requests: list[Any], **kwargs: Any) -> list[str]:
            prompts = [self.tok_encode(r.args[0]) for r in requests]
            options = [dict(r.args[1]) for r in requests]
            limits = [int(o.get("max_gen_toks", 256)) for o in options]
            rows: dict[int, tuple[int, ...]] = {}
            for batch in backend.generate(
                GenerateRequest(prompts, limits, backend.stop_ids, batch_size)
            ):
                rows.update((g.index, g.ids) for g in batch)
            out = []
            for i, o in enumerate(options):
                text = backend.decode(rows[i])
                until = o.get("until") or []
                for stop in [until] if isinstance(until, str) else until:
                    text = text.split(stop)[0] if stop else text
                out.append(text)
            return out

    return BackendLM()


def task_manager(include_path: str | None) -> Any:
    """lm-eval's index of its tasks and those under `include_path`, built once a process for
    the same task files: it reads every task file lm-eval ships (8 s or more on 2 cores), and
    a compare runs the tasks on every model. A task file added or edited under
    `include_path` since makes a new index."""
    stamp: tuple[tuple[str, int, int], ...] = ()
    if include_path is not None:
        files = sorted(p for p in Path(include_path).rglob("*") if p.is_file())
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _task_manager(include_path, stamp)


@functools.cache
def _task_manager(include_path: str | None, stamp: tuple[tuple[str, int, int], ...]) -> Any:
    from lm_eval.tasks import TaskManager

    with _built_in_index_once():
        return TaskManager(include_path=include_path)


@contextlib.contextmanager
def _built_in_index_once() -> Iterator[None]:
    """lm-eval indexes root by root and merges the roots' indexes, later over earlier
    (`lm_eval.tasks._index.TaskIndex.build`, 0.4.x): the built-in root, some 14,700 task
    files and 7 s or more here, is indexed once a process and a copy merged with each include
    path's own index, which is what `build` over both roots gives. Where lm-eval has no such
    `build`, it indexes as it always does."""
    try:
        from lm_eval.tasks import _index
    except ImportError:
        yield
        return
    original = _index.TaskIndex.__dict__.get("build")
    if not isinstance(original, staticmethod):
        yield
        return
    built_in = Path(_index.__file__).parent

    def build(paths: Any, *, resolve_includes: bool = True) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for root in paths:
            if Path(root) == built_in:
                part = copy.deepcopy(_built_in_index(original.__func__, built_in, resolve_includes))
            else:
                part = original.__func__([root], resolve_includes=resolve_includes)
            merged.update(part)
        return merged

    _index.TaskIndex.build = staticmethod(build)
    try:
        yield
    finally:
        _index.TaskIndex.build = original


@functools.cache
def _built_in_index(build: Any, root: Path, resolve_includes: bool) -> dict[str, Any]:
    return build([root], resolve_includes=resolve_includes)


def run_tasks(backend: Backend, cfg: LmEvalSettings, batch_size: int) -> list[Sample]:
    """Every configured task on an open backend; samples in task, doc order."""
    from lm_eval import simple_evaluate

    lm = backend_lm(backend, batch_size, chat=cfg.apply_chat_template)
    manager = task_manager(cfg.include_path)
    missing = [t for t in cfg.tasks if t not in manager.all_tasks]
    if missing:
        raise LmEvalError(
            f"lm-eval task(s) not found: {', '.join(missing)} (include_path {cfg.include_path})"
        )
    try:
        result = simple_evaluate(
            model=lm,
            tasks=list(cfg.tasks),
            num_fewshot=cfg.num_fewshot,
            limit=cfg.limit,
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
            apply_chat_template=cfg.apply_chat_template,
            fewshot_as_multiturn=cfg.fewshot_as_multiturn,
            system_instruction=cfg.system_instruction,
            gen_kwargs=cfg.gen_kwargs,
        )
    except Exception as exc:  # data that cannot be reached offline, a broken task config...
        raise LmEvalError(
            f"lm-eval tasks {', '.join(cfg.tasks)}: {_first_line(exc)}{_offline_hint()}"
        ) from exc
    if result is None:
        raise LmEvalError("lm-eval returned no results")
    out: list[Sample] = []
    for task in cfg.tasks:
        seen: set[int] = set()
        for raw in result["samples"].get(task, []):
            if raw["doc_id"] not in seen:  # one row per doc: the first filter's
                seen.add(raw["doc_id"])
                out.append(_sample(task, raw))
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _offline_hint() -> str:
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        return " (offline: a hub-hosted task's data cannot be downloaded; use a local task)"
    return ""


def _doc_fields(raw: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = raw["doc"] if isinstance(raw.get("doc"), dict) else {}
    difficulty = doc.get("difficulty") if doc.get("difficulty") in ("common", "hard") else "common"
    weight = doc.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        return {"difficulty": difficulty, "weight": None}
    ok = math.isfinite(weight) and weight > 0
    return {"difficulty": difficulty, "weight": float(weight) if ok else None}


def _sample(task: str, raw: dict[str, Any]) -> Sample:
    metric = next((m for m in SCORE_METRICS if m in raw.get("metrics", [])), None)
    metric = metric or (raw.get("metrics") or ["?"])[0]
    value = raw.get(metric)
    score = (
        float(value)
        if isinstance(value, int | float) and 0 <= value <= 1 and not math.isnan(value)
        else None
    )
    args = raw["arguments"]
    prompt = str(args[0][0])
    if len(args) > 1 or (args and len(args[0]) == 2 and isinstance(args[0][1], str)):
        # loglikelihood requests: (context, continuation) per option
        choices = tuple(str(a[1]) for a in args)
        lls = tuple(float(r[0]) for r in raw["filtered_resps"])
        chosen = max(range(len(lls)), key=lambda i: lls[i])
        target = raw["target"]
        gold = (
            choices[target]
            if isinstance(target, int) and 0 <= target < len(choices)
            else str(target)
        )
        return Sample(
            task=task,
            doc_id=int(raw["doc_id"]),
            doc_hash=raw["doc_hash"],
            prompt=prompt,
            target=gold,
            output=choices[chosen],
            metric=metric,
            score=score,
            choices=choices,
            loglikelihoods=lls,
            **_doc_fields(raw),
        )
    resp = raw["filtered_resps"][0]
    output = (
        resp
        if isinstance(resp, str)
        else str(resp[0] if isinstance(resp, list | tuple) and resp else resp)
    )
    return Sample(
        task=task,
        doc_id=int(raw["doc_id"]),
        doc_hash=raw["doc_hash"],
        prompt=prompt,
        target=str(raw["target"]),
        output=output,
        metric=metric,
        score=score,
        **_doc_fields(raw),
    )


# --- export ------------------------------------------------------------------------------

# Our scorers as lm-eval metrics: only those lm-eval can reproduce exactly are exported.
EXPORTABLE = {Scorer.EXACT, Scorer.NUMERIC, Scorer.NORMALIZED}


def _task_head(name: str, data_file: str) -> str:
    """A local JSONL task: its name and where lm-eval's json loader finds the docs."""
    return f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
"""


def task_yaml(name: str, data_file: str, max_gen_toks: int, normalized: bool = False) -> str:
    """A generate_until task over one of our eval-set files (prompt -> first reference)."""
    return (
        _task_head(name, data_file)
        + f"""output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{reference}}}}"
target_delimiter: ""
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: {max_gen_toks}
  do_sample: false
filter_list:
  - name: strip
    filter:
      - function: remove_whitespace
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: {str(normalized).lower()}
    ignore_punctuation: {str(normalized).lower()}
"""
    )


def data_path(path: Path) -> str:
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(resolved)


def mc_task_yaml(name: str, data_file: str) -> str:
    """A multiple_choice task: `prompt`, options in `choices`, the gold index in `label`."""
    return (
        _task_head(name, data_file)
        + """output_type: multiple_choice
doc_to_text: "{{prompt}}"
doc_to_choice: choices
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
    )


def export_tasks(
    paths: Sequence[str],
    out: Path,
    max_gen_toks: int = 32,
    data_dir: str | None = None,
    into: Path | None = None,
) -> list[Path]:
    """One task per eval-set file, named `harness_<file stem>`; the data is copied next to
    the YAML (prompt items with a single reference and an exportable scorer only). The YAML
    names the data relative to the working directory when `out` lies below it (run lm_eval
    from there), by absolute path otherwise: lm-eval's json loader resolves it that way.
    `data_dir` overrides that prefix (the shipped tasks use `data/lm_eval`). `into`: the
    folder written now, renamed to `out` after (the YAMLs name `out`)."""
    from harness.inputs.evalset import load_evalset

    folder = into or out
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    items = load_evalset(list(paths))
    for source in dict.fromkeys(i.source.path for i in items):
        mine = [i for i in items if i.source.path == source]
        rows = [
            {
                "id": i.id,
                "prompt": i.prompt,
                "reference": i.reference[0],
                "difficulty": i.difficulty.value,
                "weight": i.weight,
                "tags": list(i.tags),
            }
            for i in mine
            if i.prompt is not None and len(i.reference) == 1 and i.scorer in EXPORTABLE
        ]
        if not rows:
            continue
        name = f"harness_{Path(source).stem}".replace("-", "_")
        data = out / f"{name}.jsonl"
        (folder / data.name).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        normalized = any(i.scorer == Scorer.NORMALIZED for i in mine)
        where = f"{data_dir}/{data.name}" if data_dir else data_path(data)
        yaml = task_yaml(name, where, max_gen_toks, normalized)
        (folder / f"{name}.yaml").write_text(yaml, encoding="utf-8")
        written += [out / f"{name}.yaml", data]
    return written
