"""Corpus mode: perplexity and distribution distance over a plain-text file, on any engine,
computed the way `llama-perplexity` computes them, so the two tools can be compared number
for number (and a wikitext-style perplexity is one command: `harness corpus`).

As llama-perplexity: the text is tokenized once (with the reference model's tokenizer, <bos>
added where the model adds one), cut into chunks of `context` tokens, each chunk's first
token replaced by <bos> where the model uses one, and only the second half of each chunk
is scored: the logits at positions context/2 .. context-2 predict the tokens after them, so
every scored token has at least context/2 tokens of context. Every model is fed those ids.

Per model: perplexity; against the reference model (the baseline, or the `[corpus]
reference` candidate, e.g. the F32 GGUF for llama.cpp's own --kl-divergence figures): mean,
median, p99 and max KLD, same-top-1 share, RMS Δp, the perplexity ratio exp(mean NLL_model -
mean NLL_reference), as llama-perplexity's "Mean PPL(Q)/PPL(base)".
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.analysis.stats import quantile
from harness.records import CorpusSettings, ModelSpec
from harness.records.codec import to_json
from harness.records.errors import HarnessError
from harness.run.backends import Backend, open_backend
from harness.run.backends.base import TokenizerMismatch
from harness.run.probes import LogprobStore, picked_nll, token_stats
from harness.shell import worker

SCHEMA_VERSION = 1

logger = logging.getLogger(__name__)


class CorpusError(HarnessError):
    """The text cannot be scored as asked (too short for one chunk, unreadable)."""


@dataclass(frozen=True, slots=True)
class CorpusRow:
    model: str
    backend: str
    tokens: int  # scored tokens
    ppl: float
    seconds: float
    # Against the reference model (None on the reference's own row):
    ppl_ratio: float | None = None
    mean_kld: float | None = None
    median_kld: float | None = None
    p99_kld: float | None = None
    max_kld: float | None = None
    same_top1: float | None = None
    rms_delta_p: float | None = None
    kld_top_k: int | None = None  # top-k log-probs (a server): the KLDs are lower bounds


@dataclass(frozen=True, slots=True)
class CorpusResults:
    schema_version: int
    created_at: str
    text: str
    text_sha256: str
    context: int
    chunks: int
    scored_per_chunk: int
    reference: str
    rows: tuple[CorpusRow, ...]

    def to_json(self) -> dict[str, object]:
        return {f: to_json(getattr(self, f)) for f in self.__dataclass_fields__}


def chunk_ids(
    tokens: Sequence[int], context: int, limit: int | None, bos: int | None
) -> list[list[int]]:
    """Whole chunks of `context` tokens (a tail shorter than one is dropped), each starting
    with <bos> where the model uses one."""
    n = len(tokens) // context
    if limit is not None:
        n = min(n, limit)
    chunks = [list(tokens[i * context : (i + 1) * context]) for i in range(n)]
    if bos is not None:
        for chunk in chunks:
            chunk[0] = bos
    return chunks


def split(chunk: Sequence[int]) -> tuple[list[int], list[int]]:
    """(prompt, scored continuation): positions first .. n-2 predict tokens first+1 .. n-1."""
    first = len(chunk) // 2
    return list(chunk[: first + 1]), list(chunk[first + 1 :])


@dataclass
class _Reference:
    """What the reference model leaves for the others: the ids, the chunks, its packed
    log-probs, its NLLs, and the pieces of the ids it was fed (to check a vocabulary)."""

    tokens: list[int]
    chunks: list[list[int]]
    store: LogprobStore
    pieces: dict[int, bytes | None]
    nll: list[float]


def _tokenize(
    backend: Backend, text: str, settings: CorpusSettings
) -> tuple[list[int], list[list[int]]]:
    tokens = backend.encode(text, add_special=True)
    start = backend.encode("", add_special=True)
    chunks = chunk_ids(tokens, settings.context, settings.chunks, start[0] if start else None)
    if not chunks:
        raise CorpusError(
            f"{settings.text}: {len(tokens)} tokens, fewer than one chunk of {settings.context}"
        )
    return tokens, chunks


def _check_vocabulary(backend: Backend, text: str, ref: _Reference, where: str) -> None:
    """Engines may split a text differently (llama.cpp and transformers differ on some
    whitespace runs) while sharing the vocabulary: every model is fed the reference's ids,
    which must mean the same pieces to it."""
    own = backend.encode(text, add_special=True)
    if own == ref.tokens:
        return
    for token, want in ref.pieces.items():
        got = backend.token_bytes(token)
        if want is None or got is None or got != want:
            raise TokenizerMismatch(
                f"{where}: token id {token} stands for {want!r} in the reference's vocabulary "
                f"and for {got!r} in {backend.spec.name!r}'s: the models cannot be fed the same "
                "ids"
            )
    logger.info(
        "corpus: %s: its tokenizer splits the text into %d tokens, the reference's "
        "into %d: fed the reference's ids (same vocabulary)",
        backend.spec.name,
        len(own),
        len(ref.tokens),
    )


def _score(backend: Backend, ref: _Reference, is_reference: bool) -> dict[str, Any]:
    pairs = [split(c) for c in ref.chunks]
    scored = backend.score([p for p, _ in pairs], [c for _, c in pairs], 1)
    out: dict[str, Any] = {"nll": [], "kld": [], "agree": [], "dp": [], "top_k": None}
    for i, ((_, cont), logp) in enumerate(zip(pairs, scored, strict=True)):
        if is_reference:
            ref.store.append(i, logp)
            out["nll"] += picked_nll(logp, cont).tolist()
            continue
        stats = token_stats(ref.store.get(i), logp, cont)
        out["nll"] += list(stats.nll_cand)
        out["kld"] += list(stats.kld)
        out["agree"] += list(stats.top1_agree)
        out["dp"] += list(stats.delta_p)
        out["top_k"] = stats.kld_top_k
    if is_reference:
        ref.store.close()
        ref.nll = out["nll"]
    return out


def _summary(spec: ModelSpec, got: dict[str, Any], ref: _Reference, seconds: float) -> CorpusRow:
    nll, kld, agree, dp = got["nll"], got["kld"], got["agree"], got["dp"]
    mean_nll = sum(nll) / len(nll)
    if not kld:  # the reference itself
        return CorpusRow(spec.name, spec.backend, len(nll), math.exp(mean_nll), seconds)
    return CorpusRow(
        spec.name,
        spec.backend,
        len(nll),
        math.exp(mean_nll),
        seconds,
        ppl_ratio=math.exp(mean_nll - sum(ref.nll) / len(ref.nll)),
        mean_kld=sum(kld) / len(kld),
        median_kld=quantile(kld, 0.5),
        p99_kld=quantile(kld, 0.99),
        max_kld=max(kld),
        same_top1=sum(agree) / len(agree),
        rms_delta_p=math.sqrt(sum(d * d for d in dp) / len(dp)),
        kld_top_k=got["top_k"],
    )


def run_corpus(
    models: Sequence[ModelSpec], settings: CorpusSettings, reference: str
) -> CorpusResults:
    """Score every model on the text; `reference` (one of `models`) is scored first, and its
    tokenization and log-probs are what the others are fed and measured against."""
    text = Path(settings.text).read_text(encoding="utf-8")
    ordered = sorted(models, key=lambda m: m.name != reference)
    rows: list[CorpusRow] = []
    with tempfile.TemporaryDirectory(prefix="harness-corpus-") as tmp:
        ref: _Reference | None = None
        for spec in ordered:
            started = time.monotonic()
            logger.info("corpus: %s (%s)", spec.name, spec.backend)
            with (
                worker.running(spec.name, spec.backend, "scoring the text"),
                open_backend(spec) as backend,
            ):
                if ref is None:
                    tokens, chunks = _tokenize(backend, text, settings)
                    pieces = {t: backend.token_bytes(t) for t in set(tokens)}
                    store = LogprobStore(Path(tmp) / "reference")
                    ref = _Reference(tokens, chunks, store, pieces, [])
                    got = _score(backend, ref, is_reference=True)
                else:
                    _check_vocabulary(backend, text, ref, settings.text)
                    got = _score(backend, ref, is_reference=False)
            rows.append(_summary(spec, got, ref, round(time.monotonic() - started, 1)))
    assert ref is not None  # models holds the reference
    return CorpusResults(
        SCHEMA_VERSION,
        datetime.now(UTC).isoformat(timespec="seconds"),
        settings.text,
        hashlib.sha256(text.encode()).hexdigest(),
        settings.context,
        len(ref.chunks),
        len(split(ref.chunks[0])[1]),
        reference,
        tuple(rows),
    )


def render_table(result: CorpusResults) -> str:
    """Markdown: one row per model."""
    head = (
        f"Corpus {Path(result.text).name}: {result.chunks} chunks of {result.context} tokens, "
        f"{result.scored_per_chunk} scored per chunk; reference {result.reference}\n\n"
        "| model | engine | PPL | PPL ratio | mean KLD | median KLD | p99 KLD | same top-1 "
        "| RMS Δp | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )

    def num(x: float | None, fmt: str) -> str:
        return "—" if x is None else format(x, fmt)

    lines = []
    for r in result.rows:
        bound = "" if r.kld_top_k is None else f" (≥, top-{r.kld_top_k} + tail)"
        same = "—" if r.same_top1 is None else f"{100 * r.same_top1:.2f}%"
        rms = "—" if r.rms_delta_p is None else f"{100 * r.rms_delta_p:.2f}%"
        lines.append(
            f"| {r.model} | {r.backend} | {r.ppl:.4f} | {num(r.ppl_ratio, '.4f')} | "
            f"{num(r.mean_kld, '.6f')}{bound} | {num(r.median_kld, '.6f')} | "
            f"{num(r.p99_kld, '.6f')} | {same} | {rms} | {r.seconds:.0f} |"
        )
    return head + "\n".join(lines) + "\n"
