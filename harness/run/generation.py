"""One model's greedy run: its batches (resumed from a journal where a killed run finished
some), cut at the stop strings, its outputs as text, its speed and peak memory."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.records import (
    EvalItem,
    Generation,
    GenerationSettings,
    LmEvalSettings,
    ModelRun,
    ModelSpec,
)
from harness.run.backends import Backend, open_backend
from harness.run.backends.base import (
    Generated,
    GenerateRequest,
    InvalidAnswer,
    NonFiniteLogits,
    stopped_at_strings,
)
from harness.run.feeding import (
    ModelInputs,
    baseline_inputs,
    check_tokenizer,
    encode_prompts,
    token_pieces,
)
from harness.run.lmeval import run_tasks
from harness.run.plan import token_limits
from harness.run.preflight import check_context
from harness.run.probes import Probe
from harness.shell import worker
from harness.store import faults
from harness.store.runcache import ModelSession

logger = logging.getLogger(__name__)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string (greedy decoding is causal, so cutting after
    the fact gives what stopping early would have given)."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def greedy_rows(
    backend: Backend,
    ids: Sequence[list[int]],
    limits: Sequence[int],
    stop_ids: Sequence[int],
    settings: GenerationSettings,
    probe: Probe | None = None,
    desc: str | None = None,
    session: ModelSession | None = None,
) -> list[Generated]:
    """Every prompt's greedy output (its ids and the stop id that ended it, no log-probs), in
    prompt order, ended at the first stop string; a probe sees each batch. With a run-cache
    `session`, the batches a killed run finished are taken from it (the probe restored to
    where they end) and every batch generated now is recorded as it finishes. The rest are
    generated as one request, so an engine forms the same batches it would have formed for
    them in the first run (hf batches prompts in sorted order, and a session holds a prefix
    of that order)."""
    rows: dict[int, Generated] = {}
    if session is not None and session.done_batches and probe is not None:
        session.keep_batches(
            probe.intact([r["probe"] for r in session.done_batches]),
            "the packed log-probs differ from what the journal recorded",
        )
    done = session.done_batches if session is not None else []
    if done:
        conts: dict[int, tuple[int, ...]] = {}
        for record in done:
            for i, out, stop in record["rows"]:
                rows[i] = Generated(i, tuple(out), stop)
                conts[i] = rows[i].continuation
        if probe is not None:
            probe.restore([r["probe"] for r in done], conts)
        logger.info(
            "%s: resuming after %d of %d prompts (%d batches) finished by an earlier run",
            backend.spec.name,
            len(rows),
            len(ids),
            len(done),
        )
    todo = [i for i in range(len(ids)) if i not in rows]
    want = probe is not None
    last = time.monotonic()
    batches = backend.generate(
        GenerateRequest(
            [ids[i] for i in todo],
            [limits[i] for i in todo],
            stop_ids,
            settings.batch_size,
            want,
            desc,
            settings.stop,
        )
    )
    for raw in _mapped(batches, todo):
        batch = [stopped_at_strings(g, settings.stop, backend.decode) for g in raw]
        rows.update((g.index, replace(g, logprobs=None)) for g in batch)
        if probe is not None:
            probe.on_batch(batch)
        if session is not None:
            now = time.monotonic()
            session.record(
                {
                    "rows": [[g.index, list(g.ids), g.stop_id] for g in batch],
                    "seconds": now - last,
                    "probe": probe.state(batch) if probe else None,
                }
            )
            last = now
            faults.point(f"batch:{backend.spec.name}")
    return [rows[i] for i in range(len(ids))]


def _mapped(batches: Iterator[list[Generated]], todo: list[int]) -> Iterator[list[Generated]]:
    """Batches of a request over the prompts `todo`, with indices into all the prompts."""
    try:
        for batch in batches:
            yield [replace(g, index=todo[g.index]) for g in batch]
    except NonFiniteLogits as exc:
        raise NonFiniteLogits(exc.model, [todo[i] for i in exc.prompts], exc.step) from None
    except InvalidAnswer as exc:
        prompt = None if exc.prompt is None else todo[exc.prompt]
        raise InvalidAnswer(exc.model, exc.url, prompt, exc.field, exc.problem) from None


def generate_texts(
    backend: Backend, items: Sequence[EvalItem], settings: GenerationSettings
) -> list[str]:
    """Greedy outputs of `items` as the run makes them (decoded without special tokens,
    cut at the stop strings), in item order; no distribution probes."""
    ids = [backend.prompt_ids(item) for item in items]
    limits = token_limits(items, settings)
    rows = greedy_rows(backend, ids, limits, backend.stop_ids, settings)
    return [cut_at_stop(backend.decode(row.ids), settings.stop) for row in rows]


def reset_peak_memory() -> None:
    """Start a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb() -> float | None:
    """This process's resident-memory high-water mark since the last reset, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return None if line is None else round(int(line.split()[1]) / 1024, 1)


def run_model(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    baseline: ModelInputs | None = None,
    probe: Probe | None = None,
    lm_eval: LmEvalSettings | None = None,
    session: ModelSession | None = None,
    limits: Sequence[int] | None = None,
) -> tuple[ModelRun, ModelInputs]:
    """Generate with one model. With `baseline` (what the baseline was fed), the candidate is
    fed the baseline's prompt ids and stop ids once its vocabulary is checked to give each id
    the same bytes (`baseline_inputs`). A `probe` sees every batch with its log-probs and
    finishes before the model is freed; a run-cache `session` keeps every finished batch, and
    gives back those a killed run finished. `limits`: each item's token limit as the plan decided
    (by default its own `max_new_tokens`, else the run's). Returns the run and what it was
    fed."""
    started = time.monotonic()
    reset_peak_memory()
    earlier = session.done_batches[:] if session is not None else []
    try:
        return _run_model(
            spec,
            items,
            settings,
            baseline,
            probe,
            lm_eval,
            session,
            started,
            earlier,
            token_limits(items, settings) if limits is None else tuple(limits),
        )
    except NonFiniteLogits as exc:  # name the items (the backend knows prompt positions)
        ids = ", ".join(repr(items[i].id) for i in exc.prompts[:3] if i < len(items))
        where = "in teacher forcing" if exc.step is None else f"at generated token {exc.step + 1}"
        raise NonFiniteLogits(
            exc.model,
            exc.prompts,
            exc.step,
            f"model {spec.name!r}: NaN or infinite logits {where} of item(s) {ids}: the run "
            "stops (a model computing non-finite values gives no answer worth scoring)",
        ) from None
    except InvalidAnswer as exc:  # name the item
        item = None
        if exc.prompt is not None and exc.prompt < len(items):
            it = items[exc.prompt]
            item = f"{it.source}: id {it.id!r}"
        raise InvalidAnswer(exc.model, exc.url, exc.prompt, exc.field, exc.problem).named(
            item
        ) from None


def _run_model(
    spec: ModelSpec,
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    baseline: ModelInputs | None,
    probe: Probe | None,
    lm_eval: LmEvalSettings | None,
    session: ModelSession | None,
    started: float,
    earlier: list[dict[str, Any]],
    limits: Sequence[int],
) -> tuple[ModelRun, ModelInputs]:
    with worker.running(spec.name, spec.backend, "generating"), open_backend(spec) as backend:
        if baseline is None:
            check_tokenizer(backend, items)
            ids = encode_prompts(backend, items)
            fed = ModelInputs(
                ids,
                backend.stop_ids,
                token_pieces(backend, ids, backend.stop_ids),
                own_stop_ids=backend.stop_ids,
            )
        else:
            fed = baseline_inputs(backend, items, baseline)
        ids, stop_ids = fed.ids, fed.stop_ids
        check_context(spec.name, backend.context_length, items, [len(i) for i in ids], limits)
        if probe is not None:
            probe.start(backend)
        generating = time.monotonic()
        outs = greedy_rows(backend, ids, limits, stop_ids, settings, probe, spec.name, session)
        rows = [g.ids for g in outs]
        # The tokens served: each row's, plus the stop id that ended it, where one did;
        # batches an earlier run finished count with the time it took for them.
        produced = sum(len(g.continuation) for g in outs)
        seconds = time.monotonic() - generating + sum(float(r["seconds"]) for r in earlier)
        speed = produced / max(seconds, 1e-9)
        gens = tuple(
            _generation(backend, item, row, limit, settings.stop, prompt)
            for item, row, limit, prompt in zip(items, rows, limits, ids, strict=True)
        )
        if probe is not None:
            probe.finish(backend, ids, rows)
        samples = () if lm_eval is None else tuple(run_tasks(backend, lm_eval, settings.batch_size))
        memory = peak_memory_mb() if backend.in_process else None
    seconds_all = time.monotonic() - started
    run = ModelRun(
        name=spec.name,
        generations=gens,
        seconds=seconds_all,
        samples=samples,
        tokens_per_second=round(speed, 2) if backend.generates else None,
        peak_memory_mb=memory,
        split_differently=fed.split_differently,
        own_stop_ids=fed.own_stop_ids,
    )
    return run, fed


def _generation(
    backend: Backend,
    item: EvalItem,
    row: tuple[int, ...],
    limit: int,
    stop: Sequence[str],
    prompt: Sequence[int],
) -> Generation:
    """A row as text; cut off when it ran to its limit without a stop id or stop string (a row
    that stopped on an id is shorter than its limit: the stop id is not in it)."""
    text = backend.decode(row)
    output = cut_at_stop(text, stop)
    cut_off = len(row) >= limit and output == text
    return Generation(
        item_id=item.id,
        output=output,
        output_ids=row,
        output_tokens=tuple(backend.token_text(t) for t in row),
        cut_off=cut_off,
        prompt_tokens=len(prompt),
    )
