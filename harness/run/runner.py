"""The run stage, over any backend: tokenize once with the baseline, generate with each model
in turn (one in memory at a time), feed every candidate the baseline's token ids and stop
ids, and write what each model produced into the run folder as soon as it is done."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.analysis import answers
from harness.analysis.scorers import reference_free
from harness.records import (
    AgreementSettings,
    CandidateSpec,
    DistributionSettings,
    EvalItem,
    Generation,
    GenerationSettings,
    GgufSpec,
    LmEvalConfig,
    ModelRun,
    ModelSpec,
    OtherRecipe,
    QuantizeSpec,
    ReadyCandidate,
    TokenStats,
    batched_floor_name,
    noise_floor_name,
)
from harness.records.codec import from_json, to_json
from harness.records.errors import HarnessError
from harness.run.backends import Backend, engine_class, open_backend
from harness.run.backends.base import (
    Generated,
    InvalidAnswer,
    NonFiniteLogits,
    TokenizerMismatch,
    check_answered,
    checkpoint_fingerprint,
    stopped_at_strings,
)
from harness.run.backends.hf import BOOKKEEPING, SentenceEmbedder
from harness.run.backends.llamacpp import LlamaCppSettings
from harness.run.lmeval import run_tasks
from harness.run.lockstep import LockstepRows, available_bytes, check_fits, need
from harness.run.probes import (
    GB,
    BaselineProbe,
    CandidateProbe,
    LogprobStore,
    Probe,
    StorePlan,
)
from harness.run.quantize import quantize, quantizer_of
from harness.run.quantize.quantizers import QuantizeRecipe
from harness.shell import worker
from harness.store import faults
from harness.store.runcache import (
    MODEL,
    Claim,
    Journal,
    RunCache,
    baseline_key,
    cacheable,
    candidate_key,
)
from harness.store.rundir import RunDir, read_json

logger = logging.getLogger(__name__)


def encode_prompts(backend: Backend, items: Sequence[EvalItem]) -> list[list[int]]:
    """Prompt ids per item, as this backend's own tokenizer makes them."""
    out = []
    for item in items:
        try:
            out.append(backend.prompt_ids(item))
        except ValueError as exc:  # e.g. a tokenizer without a chat template
            raise TokenizerMismatch(
                f"{item.source}: id {item.id!r}: model {backend.spec.name!r}: "
                f"{prompt_problem(item, exc)}"
            ) from exc
    return out


def prompt_problem(item: EvalItem, exc: ValueError) -> str:
    """Why a prompt cannot be tokenized, in one line; for a chat item on a model without a
    chat template (a base model), both ways out."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if item.messages is not None and "chat template" in first.replace("_", " ").lower():
        return (
            "the model has no chat template for this chat (`messages`) item: give it one in "
            'its table (`chat_template = "template.jinja"`), or write the items as plain '
            "`prompt` text (a base model reads text)"
        )
    return first


def token_pieces(
    backend: Backend, ids: Sequence[Sequence[int]], stop_ids: Sequence[int]
) -> dict[int, bytes] | None:
    """The bytes each id used stands for in this backend's vocabulary (None: the engine
    cannot say, and a candidate must then tokenize every prompt exactly as the baseline)."""
    pieces: dict[int, bytes] = {}
    for token in sorted({t for row in ids for t in row} | set(stop_ids)):
        piece = backend.token_bytes(token)
        if piece is None:
            return None
        pieces[token] = piece
    return pieces


def _cacheable(spec: ModelSpec, fingerprint: str) -> bool:
    return cacheable(fingerprint, engine_class(spec.backend).in_process)


@dataclass(frozen=True, slots=True)
class Fed:
    """What a model was fed: prompt ids, stop ids, the bytes of each id used (the
    baseline's), and how many prompts the model's own tokenizer would have split otherwise."""

    ids: list[list[int]]
    stop_ids: tuple[int, ...]
    pieces: dict[int, bytes] | None = None
    split_differently: int = 0
    own_stop_ids: tuple[int, ...] = ()


def _own_ids(backend: Backend, items: Sequence[EvalItem]) -> list[list[int] | str]:
    """Each prompt as the backend's own tokenizer makes it, or why it cannot (no chat template,
    say: it is fed the baseline's rendering anyway)."""
    out: list[list[int] | str] = []
    for item in items:
        try:
            out.append(backend.prompt_ids(item))
        except ValueError as exc:
            out.append((str(exc).strip().splitlines() or [""])[0])
    return out


def _first_difference(backend: Backend, items: Sequence[EvalItem], base: Fed) -> str | None:
    """The first id the baseline was fed (item by item, then the stop ids) that stands for
    other bytes in `backend`'s vocabulary, or that it cannot account for; None if none."""
    assert base.pieces is not None
    seen: set[int] = set()
    rows = [
        *((item, row) for item, row in zip(items, base.ids, strict=True)),
        (None, list(base.stop_ids)),
    ]
    for item, row in rows:
        for token in row:
            if token in seen:
                continue
            seen.add(token)
            want, got = base.pieces.get(token), backend.token_bytes(token)
            if got != want:
                at = f"{item.source}: id {item.id!r}: " if item is not None else "stop ids: "
                return (
                    f"{at}token id {token} stands for {want!r} in the baseline's vocabulary "
                    f"and for {got!r} in {backend.spec.name!r}'s: the vocabularies differ, so "
                    "the models cannot be fed the same ids"
                )
    return None


def baseline_inputs(backend: Backend, items: Sequence[EvalItem], base: Fed) -> Fed:
    """The baseline's ids, checked to mean the same bytes in this backend's vocabulary.

    Engines sharing a vocabulary may still split a text differently (llama.cpp and
    transformers differ on some whitespace runs), so every model is fed the baseline's ids
    whenever each id used stands for the same bytes; only a real vocabulary difference is
    refused. Where either engine cannot say what its ids stand for (an engine without
    `token_bytes`), the candidate's own ids must equal the baseline's."""
    name = backend.spec.name
    own = _own_ids(backend, items)
    differ = [i for i, ids in enumerate(own) if ids != base.ids[i]]
    # Both engines can say what an id stands for (token_bytes is None where one cannot).
    knows = (
        bool(base.pieces) and backend.token_bytes(next(iter(base.pieces or {0: b""}))) is not None
    )
    if knows:
        problem = _first_difference(backend, items, base)
        if problem is not None:
            raise TokenizerMismatch(problem)
    elif differ:
        item, why = items[differ[0]], own[differ[0]]
        if isinstance(why, str):
            raise TokenizerMismatch(f"{item.source}: id {item.id!r}: model {name!r}: {why}")
        raise TokenizerMismatch(
            f"{item.source}: id {item.id!r}: the tokenizer of {name!r} maps this prompt to "
            "other token ids than the baseline's, and what its ids stand for cannot be "
            "checked: the models cannot be fed identical inputs"
        )
    if differ:
        logger.info(
            "%s: its own tokenizer splits %d of %d prompts differently; it is fed "
            "the baseline's ids (same vocabulary)",
            name,
            len(differ),
            len(items),
        )
    return replace(base, split_differently=len(differ), own_stop_ids=backend.stop_ids)


class PromptTooLong(HarnessError):
    """A prompt and its token limit do not fit the model's context."""


# A tokenizer whose vocabulary holds long pieces but which splits the eval set's own text into
# fewer than this many characters a token is not the model's (transformers' GGUF loader gave
# Gemma 3 a character-level tokenizer: 24 ids for "The capital of France is"). Measured:
# SmolLM2's BPE gives 3.5-3.7 characters a token on the prose, code and long-context sets and
# 2.05 on the demo's sums; a character-level tokenizer gives 1.0.
MIN_CHARS_PER_TOKEN = 1.5
LONG_PIECES = 3  # median characters of a vocabulary piece from which it is not character-level


def check_tokenizer(backend: Backend, items: Sequence[EvalItem], sample: int = 200) -> None:
    """The baseline's tokenizer on the eval set's own text, before any generation: text
    that decodes to other text, or a vocabulary of long pieces used one character at a time,
    is a warning naming the model (its answers would say little); ids that cannot be decoded
    at all are an error."""
    texts: list[tuple[EvalItem, str]] = []
    for item in items[:sample]:
        said = (
            [item.prompt] if item.prompt is not None else [m.content for m in item.messages or ()]
        )
        texts += [(item, text) for text in said]
    chars = tokens = 0
    changed: list[str] = []
    for item, text in texts:
        ids = backend.encode(text)
        try:
            back = backend.decode(ids)
        except Exception as exc:
            raise TokenizerMismatch(
                f"model {backend.spec.name!r}: its tokenizer cannot decode the ids it gives "
                f"{item.source} (id {item.id!r}): {type(exc).__name__}: {exc}"
            ) from None
        chars, tokens = chars + len(text), tokens + len(ids)
        if back.strip() != text.strip():
            changed.append(item.id)
    if changed:
        logger.warning(
            "model %r: its tokenizer does not give back the text of %d of %d prompts (first: "
            "id %r): check the tokenizer the checkpoint ships",
            backend.spec.name,
            len(changed),
            len(texts),
            changed[0],
        )
    step = max(1, backend.vocab_size // 2000)
    pieces = sorted(len(backend.token_text(t)) for t in range(0, backend.vocab_size, step))
    median = pieces[len(pieces) // 2] if pieces else 0
    if tokens and chars / tokens < MIN_CHARS_PER_TOKEN and median >= LONG_PIECES:
        logger.warning(
            "model %r: its tokenizer splits the eval set into %.2f characters a token although "
            "its vocabulary's pieces are %d characters long (median): a character-level "
            "tokenizer, not the model's? Its answers would say little about quantization",
            backend.spec.name,
            chars / tokens,
            median,
        )


def check_context(
    name: str,
    context: int | None,
    items: Sequence[EvalItem],
    lengths: Sequence[int],
    limits: Sequence[int],
) -> None:
    """Never truncate silently: the first item whose prompt plus max_new_tokens exceeds the
    model's context is an error naming it."""
    if context is None:
        return
    for item, n, limit in zip(items, lengths, limits, strict=True):
        if n + limit > context:
            raise PromptTooLong(
                f"{item.source}: id {item.id!r}: {n} prompt tokens + max_new_tokens {limit} = "
                f"{n + limit} exceed the context of {name!r} ({context} tokens)"
            )


def preflight(
    baseline: ModelSpec,
    candidates: Sequence[CandidateSpec],
    items: Sequence[EvalItem],
    settings: GenerationSettings,
) -> None:
    """Before anything is quantized or run: every model's device exists, and every item's
    prompt (tokenized as the baseline tokenizes it: every model is fed those ids) plus its
    max_new_tokens fits every model's context, as far as that is known without loading
    weights (run_model checks again once each model is loaded)."""
    for cand in candidates:  # cheapest first: what would fail after minutes of quantizing
        if cand.quantize is not None:
            check_recipe(baseline, cand.name, cand.quantize)
    base = engine_class(baseline.backend).preflight(baseline)
    contexts = [(baseline.name, base.context)]
    for cand in candidates:
        if cand.model is not None:
            known = engine_class(cand.model.backend).preflight(cand.model)
            contexts.append((cand.name, known.context))
            if known.answers is not None:
                check_answered(cand.name, items, known.answers)
        elif cand.quantize is not None:
            quantizer = quantizer_of(cand.quantize)
            contexts.append((cand.name, quantizer.context(baseline, base.context)))
    if base.prompt_ids is None or all(c is None for _, c in contexts):
        return
    lengths = []
    for item in items:
        try:
            lengths.append(len(base.prompt_ids(item)))
        except ValueError as exc:  # e.g. a tokenizer without a chat template
            raise TokenizerMismatch(
                f"{item.source}: id {item.id!r}: model {baseline.name!r}: "
                f"{prompt_problem(item, exc)}"
            ) from exc
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
    for name, context in contexts:
        check_context(name, context, items, lengths, limits)


def check_recipe(baseline: ModelSpec, name: str, spec: QuantizeRecipe) -> None:
    """What a candidate's quantization needs, checked before any rung is made: its input
    files, then what its quantizer needs (llama.cpp's tools, group sizes that divide every
    layer)."""
    quantizer = quantizer_of(spec)
    files = {"calibration set": spec.calibration, **quantizer.inputs(spec)}
    for what, path in files.items():
        if path is not None and not Path(path).is_file():
            raise HarnessError(f"candidate {name!r}: {what} {path}: no such file")
    try:
        quantizer.check(baseline, spec)
    except HarnessError as exc:  # the recipe in words, unless the message says it already
        said = spec.describe() in str(exc)
        raise HarnessError(
            f"candidate {name!r}{'' if said else f' ({spec.describe()})'}: {exc}"
        ) from None


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
    journal: Journal | None = None,
) -> list[Generated]:
    """Every prompt's greedy output (its ids and the stop id that ended it, no log-probs), in
    prompt order, ended at the first stop string; a probe sees each batch. With a
    `journal`, the batches a killed run finished are taken from it (the probe restored to
    where they end) and every batch generated now is journalled as it finishes. The rest are
    generated as one request, so an engine forms the same batches it would have formed for
    them in the first run (hf batches prompts in sorted order, and a journal holds a prefix
    of that order)."""
    rows: dict[int, Generated] = {}
    if journal is not None and journal.batches and probe is not None:
        journal.keep(
            probe.intact([r["probe"] for r in journal.batches]),
            "the packed log-probs differ from what the journal recorded",
        )
    if journal is not None and journal.batches:
        conts: dict[int, tuple[int, ...]] = {}
        for record in journal.batches:
            for i, out, stop in record["rows"]:
                rows[i] = Generated(i, tuple(out), stop)
                conts[i] = rows[i].continuation
        if probe is not None:
            probe.restore([r["probe"] for r in journal.batches], conts)
        logger.info(
            "%s: resuming after %d of %d prompts (%d batches) finished by an earlier run",
            backend.spec.name,
            len(rows),
            len(ids),
            len(journal.batches),
        )
    todo = [i for i in range(len(ids)) if i not in rows]
    want = probe is not None
    last = time.monotonic()
    batches = backend.generate(
        [ids[i] for i in todo],
        [limits[i] for i in todo],
        stop_ids,
        settings.batch_size,
        want,
        desc,
        settings.stop,
    )
    for raw in _mapped(batches, todo):
        batch = [stopped_at_strings(g, settings.stop, backend.decode) for g in raw]
        rows.update((g.index, replace(g, logprobs=None)) for g in batch)
        if probe is not None:
            probe.on_batch(batch)
        if journal is not None:
            now = time.monotonic()
            journal.append(
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
    limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
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
    baseline: Fed | None = None,
    probe: Probe | None = None,
    lm_eval: LmEvalConfig | None = None,
    journal: Journal | None = None,
) -> tuple[ModelRun, Fed]:
    """Generate with one model. With `baseline` (what the baseline was fed), the candidate is
    fed the baseline's prompt ids and stop ids once its vocabulary is checked to give each id
    the same bytes (`baseline_inputs`). A `probe` sees every batch with its log-probs and
    finishes before the model is freed; a `journal` keeps every finished batch, and gives
    back those a killed run finished. Returns the run and what it was fed."""
    started = time.monotonic()
    reset_peak_memory()
    earlier = journal.batches[:] if journal is not None else []
    try:
        return _run_model(
            spec, items, settings, baseline, probe, lm_eval, journal, started, earlier
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
    baseline: Fed | None,
    probe: Probe | None,
    lm_eval: LmEvalConfig | None,
    journal: Journal | None,
    started: float,
    earlier: list[dict[str, Any]],
) -> tuple[ModelRun, Fed]:
    with worker.running(spec.name, spec.backend, "generating"), open_backend(spec) as backend:
        if baseline is None:
            check_tokenizer(backend, items)
            ids = encode_prompts(backend, items)
            fed = Fed(
                ids,
                backend.stop_ids,
                token_pieces(backend, ids, backend.stop_ids),
                own_stop_ids=backend.stop_ids,
            )
        else:
            fed = baseline_inputs(backend, items, baseline)
        ids, stop_ids = fed.ids, fed.stop_ids
        limits = [item.max_new_tokens or settings.max_new_tokens for item in items]
        check_context(spec.name, backend.context_length, items, [len(i) for i in ids], limits)
        if probe is not None:
            probe.start(backend)
        generating = time.monotonic()
        outs = greedy_rows(backend, ids, limits, stop_ids, settings, probe, spec.name, journal)
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


def noise_floor_candidate(baseline: ModelSpec, baseline_fp: str) -> ReadyCandidate:
    """The baseline again, same settings: what "identical" can mean on this machine."""
    spec = replace(baseline, name=noise_floor_name(baseline.name))
    return ReadyCandidate(spec=spec, gated=False, fingerprint=baseline_fp, noise_floor=True)


def batched_floor_candidate(baseline: ModelSpec, baseline_fp: str, n: int) -> ReadyCandidate:
    """The llama.cpp baseline again, `n` sequences per batch: what batching alone moves."""
    spec = replace(
        baseline,
        name=batched_floor_name(baseline.name, n),
        settings=replace(baseline.settings or LlamaCppSettings(), parallel=n),
    )
    return ReadyCandidate(
        spec=spec, gated=False, fingerprint=baseline_fp, noise_floor=True, batched=n
    )


def ready_candidate(
    cand: CandidateSpec, baseline: ModelSpec, baseline_fp: str, cache: Path | None
) -> ReadyCandidate:
    """A candidate with a checkpoint: as configured, or quantized (cached) from the baseline."""
    if cand.model is not None:
        return ReadyCandidate(
            spec=cand.model,
            gated=cand.gated,
            fingerprint=checkpoint_fingerprint(cand.model.path),
        )
    if cand.quantize is None:  # config parsing gives every candidate one of the two
        raise TypeError(f"candidate {cand.name!r} has neither a checkpoint nor a recipe")
    q = cand.quantize
    calibration = f", calibration {q.calibration}" if q.calibration else ""
    logger.info("%s: %s%s", cand.name, q.describe(), calibration)
    made = quantize(baseline.path, baseline_fp, q, cache)
    status = "cached" if made.cached else f"quantized in {made.seconds:.0f}s"
    logger.info("%s: %s: %s", cand.name, status, made.path)
    quantizer = quantizer_of(q)
    spec = quantizer.candidate(cand.name, made.path, baseline)
    if not isinstance(q, QuantizeSpec | GgufSpec):  # a plug-in's record, kept as it wrote it
        q = OtherRecipe(
            engine=quantizer.name,
            settings=to_json(q),
            description=q.describe(),
            calibration=q.calibration,
        )
    fp = checkpoint_fingerprint(spec.path, ignore=BOOKKEEPING)
    return ReadyCandidate(
        spec=spec,
        gated=cand.gated,
        fingerprint=fp,
        quantize=q,
        calibration_sha256=made.calibration_sha256,
        quantize_seconds=made.seconds,
        quantize_cached=made.cached,
    )


def judge_meaning(
    items: Sequence[EvalItem],
    runs: dict[str, ModelRun],
    baseline: str,
    agreement: AgreementSettings,
    folder: RunDir,
) -> None:
    """Per candidate, the embedding similarity of each reference-free item's output to the
    baseline's (where they differ), written to the run folder for the analysis."""
    free = [i for i, item in enumerate(items) if reference_free(item)]
    base = runs[baseline].generations

    def to_embed(gens: Sequence[Generation], i: int) -> bool:
        """Outputs that differ, unless their final answers already do (then: diverged)."""
        b, c = base[i], gens[i]
        return b.output != c.output and not answers.changed(
            items[i], b.output, c.output, b.cut_off, c.cut_off
        )

    differ = {
        name: [i for i in free if to_embed(run.generations, i)]
        for name, run in runs.items()
        if name != baseline
    }
    if not any(differ.values()):
        return  # nothing to judge: identical outputs need no embedding model
    embedder = SentenceEmbedder(agreement.model)
    for name, rows in differ.items():
        pairs = [(base[i].output, runs[name].generations[i].output) for i in rows]
        with worker.running(agreement.model, "sentence-embedding", f"judging {name}'s outputs"):
            sims = embedder.similarities(pairs)
        folder.write_meaning(name, {items[i].id: s for i, s in zip(rows, sims, strict=True)})


def write_model(
    folder: RunDir,
    run: ModelRun,
    items: Sequence[EvalItem],
    stats: Sequence[TokenStats] | None,
    reference_nll: dict[str, float] | None,
    lm_eval: LmEvalConfig | None,
) -> None:
    """One model's outputs into a run folder (the run's, or a run-cache entry)."""
    folder.write_generations(run)
    if lm_eval is not None:
        folder.write_samples(run.name, run.samples)
    if stats is not None:
        folder.write_token_stats(run.name, items, stats)
    if reference_nll is not None:
        folder.write_reference_nll(run.name, reference_nll)


def _meta(run: ModelRun) -> dict[str, Any]:
    return {
        "seconds": round(run.seconds, 3),
        "tokens_per_second": run.tokens_per_second,
        "peak_memory_mb": run.peak_memory_mb,
        "split_differently": run.split_differently,
        "own_stop_ids": list(run.own_stop_ids),
    }


def _cached_run(
    name: str,
    entry: RunDir,
    meta: dict[str, Any],
    items: Sequence[EvalItem],
    lm_eval: LmEvalConfig | None,
) -> tuple[ModelRun, list[TokenStats] | None, dict[str, float] | None]:
    """A model's run read back from a run-cache entry, under the run's name for it."""
    gens = tuple(entry.read_generations(MODEL, items))
    samples = tuple(entry.read_samples(MODEL)) if lm_eval is not None else ()
    ref = entry.reference_nll(MODEL)
    nll = from_json(dict[str, float], read_json(ref)) if ref.is_file() else None
    run = ModelRun(
        name=name,
        generations=gens,
        seconds=float(meta["seconds"]),
        samples=samples,
        tokens_per_second=meta["tokens_per_second"],
        peak_memory_mb=meta["peak_memory_mb"],
        reused=True,
        split_differently=int(meta.get("split_differently", 0)),
        own_stop_ids=tuple(meta.get("own_stop_ids", ())),
    )
    return run, entry.read_token_stats(MODEL, items), nll


class _Runner:
    """The run stage's state: the run folder, the cache, the baseline's ids, stop ids and
    probe once it has run."""

    def __init__(
        self,
        items: Sequence[EvalItem],
        settings: GenerationSettings,
        folder: RunDir,
        lm_eval: LmEvalConfig | None,
        cache: RunCache | None,
        distribution: DistributionSettings,
    ) -> None:
        self.items, self.settings, self.folder = items, settings, folder
        self.lm_eval, self.cache, self.distribution = lm_eval, cache, distribution
        self.lockstep = settings.distribution and distribution.mode == "lockstep"
        self.base_spec: ModelSpec | None = None
        self.base_key = ""
        self.fed = Fed([], ())
        self.base_probe: BaselineProbe | None = None

    def _save(
        self, run: ModelRun, stats: Sequence[TokenStats] | None, nll: dict[str, float] | None
    ) -> None:
        write_model(self.folder, run, self.items, stats, nll, self.lm_eval)

    def baseline(self, spec: ModelSpec, fingerprint: str) -> ModelRun:
        items, settings = self.items, self.settings
        self.base_spec = spec
        cache = self.cache if self.cache and _cacheable(spec, fingerprint) else None
        if cache is None:  # a server or a hub id: run into the run folder, no resuming
            probe = None
            if settings.distribution:
                probe = BaselineProbe(items, self._store(self.folder), settings.batch_size)
            run, self.fed = run_model(spec, items, settings, probe=probe, lm_eval=self.lm_eval)
            self.base_probe = probe
            self._save(run, None, probe.reference_nll if probe else None)
            return run
        self.base_key = baseline_key(
            spec, fingerprint, items, settings, self.lm_eval, store=self.distribution
        )
        # the baseline's entry outlives the run: adding a candidate, or running the same
        # items again, reads it back instead of generating the baseline again
        with cache.claim(self.base_key, spec.name, keep=True) as claim:
            if claim.found is None:
                self._make_baseline(spec, claim)
            assert claim.found is not None
            entry, meta = claim.found
        run, _, nll = _cached_run(spec.name, entry, meta, items, self.lm_eval)
        run = replace(run, reused=claim.reused)
        pieces = (
            {int(k): bytes.fromhex(v) for k, v in meta["pieces"].items()}
            if meta.get("pieces") is not None
            else None
        )
        self.fed = Fed(meta["prompt_ids"], tuple(meta["stop_ids"]), pieces)
        if settings.distribution:
            store = (
                LockstepRows(settings.batch_size)
                if self.lockstep
                else LogprobStore.open(entry.logprob_stem)
            )
            conts = meta["continuations"]
            self.base_probe = BaselineProbe.restored(
                items, store, settings.batch_size, self.fed.stop_ids, conts
            )
        self._save(run, None, nll)
        return run

    def _store(self, folder: RunDir) -> LogprobStore | LockstepRows:
        if self.lockstep:
            return LockstepRows(self.settings.batch_size)
        return LogprobStore(folder.logprob_stem, self._plan())

    def _plan(self) -> StorePlan:
        """The baseline store's plan: as many rows as every item's token limit plus its stop
        id could fill."""
        d = self.distribution
        limits = [item.max_new_tokens or self.settings.max_new_tokens for item in self.items]
        return StorePlan(
            store=d.store,
            top_k=d.top_k,
            max_bytes=d.max_store_gb * GB,
            positions=sum(n + 1 for n in limits),
        )

    def _make_baseline(self, spec: ModelSpec, claim: Claim) -> None:
        items, settings, tmp = self.items, self.settings, claim.work
        probe = None
        if settings.distribution:
            probe = BaselineProbe(items, self._store(tmp), settings.batch_size)
        run, fed = run_model(
            spec, items, settings, probe=probe, lm_eval=self.lm_eval, journal=claim.journal
        )
        write_model(
            tmp,
            replace(run, name=MODEL),
            items,
            None,
            probe.reference_nll if probe else None,
            self.lm_eval,
        )
        pieces = None if fed.pieces is None else {k: v.hex() for k, v in fed.pieces.items()}
        meta = _meta(run) | {
            "prompt_ids": fed.ids,
            "stop_ids": list(fed.stop_ids),
            "pieces": pieces,
        }
        if probe is not None:
            meta["continuations"] = [list(probe.conts[i]) for i in range(len(items))]
        claim.commit(meta)

    def candidate(self, cand: ReadyCandidate) -> ModelRun:
        spec, items = cand.spec, self.items
        if self.cache is None or not self.base_key or not _cacheable(spec, cand.fingerprint):
            run, stats, nll = self._run_candidate(spec)
            self._save(run, stats, nll)
            return run
        role = "noise-floor" if cand.noise_floor else "candidate"
        key = candidate_key(spec, cand.fingerprint, self.base_key, role)
        # Kept after the run, so that a config with one candidate more runs that one alone;
        # a noise floor is measured afresh each time (its point is a second run).
        with self.cache.claim(key, spec.name, keep=not cand.noise_floor) as claim:
            if claim.found is None:
                run, stats, nll = self._run_candidate(spec, claim.journal)
                write_model(claim.work, replace(run, name=MODEL), items, stats, nll, self.lm_eval)
                claim.commit(_meta(run))
                self._save(run, stats, nll)
                return run
            found = claim.found
        run, stats, nll = _cached_run(spec.name, *found, items, self.lm_eval)
        self._save(run, stats, nll)
        return run

    def _run_candidate(
        self, spec: ModelSpec, journal: Journal | None = None
    ) -> tuple[ModelRun, list[TokenStats] | None, dict[str, float] | None]:
        probe = None
        caps = engine_class(spec.backend).capabilities
        if self.base_probe is not None and (caps.full_vocab_logprobs or caps.top_k):
            probe = CandidateProbe(self.items, self.base_probe, self.settings.batch_size)
        with self._beside(probe):
            run, _ = run_model(
                spec, self.items, self.settings, self.fed, probe, self.lm_eval, journal
            )
        return run, probe.ordered() if probe else None, probe.reference_nll if probe else None

    @contextlib.contextmanager
    def _beside(self, probe: CandidateProbe | None) -> Iterator[None]:
        """In lockstep, the baseline loaded while the candidate runs, scoring its own rows."""
        store = None if probe is None else probe.base.store
        if probe is None or not isinstance(store, LockstepRows) or self.base_spec is None:
            yield
            return
        with open_backend(self.base_spec) as backend:
            store.attach(backend, self.fed.ids, probe.base.conts)
            try:
                yield
            finally:
                store.detach()


def run_all(
    baseline: ModelSpec,
    candidates: Sequence[ReadyCandidate],
    items: Sequence[EvalItem],
    settings: GenerationSettings,
    folder: RunDir,
    lm_eval: LmEvalConfig | None = None,
    agreement: AgreementSettings | None = None,
    cache: RunCache | None = None,
    baseline_fp: str = "",
    distribution: DistributionSettings | None = None,
) -> dict[str, ModelRun]:
    """Generate with the baseline, then each candidate on the baseline's token ids; write
    each model's generations as soon as it is done, and (with `settings.distribution`)
    each candidate's per-token distances to the baseline and every model's reference NLLs.
    With a run `cache`, a model whose run is cached is read back instead of run (its
    `ModelRun.reused` says so) and every model run is cached. Returns every model's run
    (generations, seconds, speed), by name."""
    if (
        settings.distribution
        and not engine_class(baseline.backend).capabilities.full_vocab_logprobs
    ):
        # A server's top-k cannot be the reference of a KLD: say so, and leave the metrics out
        # rather than report a number that means something else.
        logger.warning(
            "%s: the %s engine returns no full-vocabulary log-probs: the "
            "distribution metrics are left out of this run",
            baseline.name,
            baseline.backend,
        )
        settings = replace(settings, distribution=False)
    distribution = distribution or DistributionSettings()
    if settings.distribution and distribution.mode == "lockstep":
        specs = [c.spec for c in candidates]
        limit = settings.max_new_tokens
        check_fits(need(baseline, specs, items, settings.batch_size, limit), available_bytes())
    runner = _Runner(items, settings, folder, lm_eval, cache, distribution)
    runs = {baseline.name: runner.baseline(baseline, baseline_fp)}
    for cand in candidates:
        runs[cand.spec.name] = runner.candidate(cand)
    for name, run in runs.items():
        if run.reused:
            logger.info("%s: reused from the run cache (no generation)", name)
    folder.remove_scratch()
    judge_meaning(items, runs, baseline.name, agreement or AgreementSettings(), folder)
    return runs
