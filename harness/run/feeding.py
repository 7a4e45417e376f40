"""What every model is fed: the baseline's prompt ids and stop ids, made once by its tokenizer
and checked to mean the same bytes in each candidate's vocabulary (identical inputs are
enforced, not assumed); the baseline's tokenizer checked on the eval set's own text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.records import (
    EvalItem,
)
from harness.run.backends import Backend
from harness.run.backends.base import (
    TokenizerMismatch,
)

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


@dataclass(frozen=True, slots=True)
class ModelInputs:
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


def _first_difference(backend: Backend, items: Sequence[EvalItem], base: ModelInputs) -> str | None:
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


def baseline_inputs(backend: Backend, items: Sequence[EvalItem], base: ModelInputs) -> ModelInputs:
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
