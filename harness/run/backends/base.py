"""The backend seam: the only interface through which anything above the run stage reaches a
model. It works on token ids, never on text, so identical inputs stay guaranteed whatever
engine runs a model: the run stage tokenizes every prompt once, with the baseline's
tokenizer, and feeds those ids to every backend.

An engine is one subclass of `Backend` in one file of this package, named in `ENGINES`
(`harness/run/backends/__init__.py`); its own dependencies are imported inside its methods, so
`import harness.run.backends` never loads torch. Log-prob rows are whatever array type the engine
returns with `.shape` (torch tensors for `hf`); they stay inside the run stage.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from harness.records import EvalItem, ModelSpec
from harness.records.errors import HarnessError


class ModelLoadError(HarnessError):
    """The model could not be loaded; the message says which and why, in one line."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can return besides greedy ids."""

    full_vocab_logprobs: bool  # a log-prob for every vocabulary entry at each position
    top_k: int | None = None  # else at most this many alternatives per position (None: none)


@dataclass(frozen=True, slots=True)
class TopK:
    """Log-probs of the k most likely tokens at each of n positions (what a server returns,
    what a top-k baseline store keeps), in place of a full-vocabulary [n, V] row: `ids` and
    `logp` are [n, k] tensors; `target` [n] holds the log-prob of the token that followed
    where the engine reported it even outside the top k (vLLM's prompt log-probs), else None;
    `tail` [n] the log of the probability outside the k where it was computed from the whole
    row (a store), else None (it is then 1 minus the k's sum)."""

    ids: Any
    logp: Any
    target: Any = None
    tail: Any = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.ids.shape[0]), int(self.ids.shape[1]))


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One request for greedy continuations, as every engine takes it: the prompts (token
    ids), each one's token limit, the ids that end a row, how many rows a batch holds,
    whether log-probs are wanted, the progress bar's label, and stop strings an engine may
    end a row on once completed (it must not end it earlier)."""

    prompts: Sequence[Sequence[int]]
    limits: Sequence[int]
    stop_ids: Sequence[int]
    batch_size: int
    want_logprobs: bool = False
    desc: str | None = None
    stop_strings: Sequence[str] = ()

    def __iter__(self) -> Iterator[Any]:
        """Its fields in order, for an engine to unpack in one line."""
        return iter((self.prompts, self.limits, self.stop_ids, self.batch_size,
                     self.want_logprobs, self.desc, self.stop_strings))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Generated:
    """One greedy continuation."""

    index: int  # position of its prompt in the request
    ids: tuple[int, ...]  # generated ids, without the stop id that ended them
    stop_id: int | None  # the stop id that ended the row; None when it hit its limit
    # With want_logprobs: log-probs [len(ids) + (1 if stop_id is not None else 0), V] at each
    # generated position (greedy decoding is teacher forcing on the model's own output).
    logprobs: Any = None

    @property
    def continuation(self) -> tuple[int, ...]:
        """The generated ids plus the stop id that ended them: what the log-probs predict."""
        return self.ids if self.stop_id is None else (*self.ids, self.stop_id)

    def first(self, k: int) -> Generated:
        """The first k generated ids, ended by none of the stop ids, with their log-probs."""
        logp = self.logprobs
        if isinstance(logp, TopK):
            logp = TopK(
                *(
                    None if x is None else x[:k]
                    for x in (logp.ids, logp.logp, logp.target, logp.tail)
                )
            )
        elif logp is not None:
            logp = logp[:k]
        return replace(self, ids=self.ids[:k], stop_id=None, logprobs=logp)


def ends_on_string(
    ids: Sequence[int], stop: Sequence[str], decode: Callable[[Sequence[int]], str]
) -> bool:
    """Whether the last id completes a stop string: an engine's early stop (the runner cuts
    exactly, `stopped_at_strings`). Only the last few ids are decoded: a token gives at least
    one character, so a stop string completed by the last id lies within its length of ids."""
    if not stop or not ids:
        return False
    window = list(ids[-(max(map(len, stop)) + 1) :])
    if not any(s in decode(window) for s in stop):
        return False
    return not any(s in decode(window[:-1]) for s in stop)


def stopped_at_strings(
    generated: Generated, stop: Sequence[str], decode: Callable[[Sequence[int]], str]
) -> Generated:
    """`generated` ended at the token that completes its first stop string, as a server ends
    on `stop`: the ids after it were never served, so nothing may measure them (KLD positions,
    lengths, first divergence, tokens counted). Greedy decoding is causal, so cutting after
    the fact gives what stopping early gives; an engine that stopped early is unchanged. The
    shortest such prefix is found by bisection (a prefix that holds a stop string keeps it)."""
    if not stop or not any(s in decode(generated.ids) for s in stop):
        return generated
    low, high = 1, len(generated.ids)  # the shortest prefix holding a stop string: in (low-1, high]
    while low < high:
        mid = (low + high) // 2
        if any(s in decode(generated.ids[:mid]) for s in stop):
            high = mid
        else:
            low = mid + 1
    return (
        generated
        if high == len(generated.ids) and generated.stop_id is None
        else generated.first(high)
    )


class Unanswered(HarnessError):
    """Items a candidate cannot answer (a replayed log without their answers)."""


def check_answered(
    name: str, items: Sequence[EvalItem], answers: Callable[[EvalItem], bool]
) -> None:
    """Every item has an answer in a replayed log, before the baseline runs a batch."""
    missing = [item for item in items if not answers(item)]
    if missing:
        first = missing[0]
        raise Unanswered(
            f"{first.source}: id {first.id!r}: model {name!r} has no logged answer for it "
            f"({len(missing):,} of {len(items):,} items have none: a request that failed in "
            "production was logged without one; leave such items out of the eval set)"
        )


@dataclass(frozen=True, slots=True)
class Preflight:
    """What is known of a model before its weights load: how many tokens it attends to
    (None: known only once loaded) and how it tokenizes a prompt (None: only once loaded)."""

    context: int | None
    prompt_ids: Callable[[EvalItem], list[int]] | None = None
    # Whether the engine can answer an item at all (a replayed log holds its answer): every
    # item is checked before any model runs; None: any item
    answers: Callable[[EvalItem], bool] | None = None


class Backend(ABC):
    """One model loaded by one engine. Use as a context manager, or call `close()`."""

    capabilities: ClassVar[Capabilities]
    # The model runs in this process, so its peak memory is ours to measure (not a server's).
    in_process: ClassVar[bool] = True
    # Its tokens per second say how fast the model generates (a replayed log's do not).
    generates: ClassVar[bool] = True
    # The engine's own settings record (declared with `harness.records.schema.setting`):
    # its keys sit in the model's config table, and the record reaches the engine as
    # `spec.settings`. None: the engine takes no settings of its own.
    settings: ClassVar[type | None] = None

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @classmethod
    def preflight(cls, spec: ModelSpec) -> Preflight:
        """Checked for every model before any model runs, without loading weights: raises
        ModelLoadError when the model cannot run here as configured (a device that does not
        exist); says what it can of its context and tokenizer."""
        return Preflight(None)

    # --- tokenizer --------------------------------------------------------------------------

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The engine's own tokenizer object (for code that must hand it to a library)."""

    @abstractmethod
    def prompt_ids(self, item: EvalItem) -> list[int]:
        """An item's prompt as ids; `messages` through the model's chat template. Raises
        ValueError when the tokenizer cannot render it (no chat template)."""

    @abstractmethod
    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Text as ids: bare (references), or with the special tokens the tokenizer adds by
        default, such as <bos> (a plain prompt; lm-eval requests)."""

    @property
    def vocab_size(self) -> int:
        """How many token ids the tokenizer knows (0: unknown)."""
        return 0

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Ids as text, special tokens left out."""

    @abstractmethod
    def token_text(self, token_id: int) -> str:
        """One id decoded alone, to show where two outputs split."""

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes the id stands for in the vocabulary (special tokens: their text), or
        None where the engine cannot say: what decides whether two engines share a
        vocabulary, so that the baseline's ids can be fed to both."""
        return None

    @property
    @abstractmethod
    def stop_ids(self) -> tuple[int, ...]:
        """The ids that end a generated turn."""

    @property
    def chat_template(self) -> str | None:
        """The chat template's source, where the engine exposes one."""
        return None

    def render_chat(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """A conversation as the chat template renders it (for lm-eval's chat mode)."""
        raise NotImplementedError(f"{type(self).__name__} cannot render a chat as text")

    @property
    def context_length(self) -> int | None:
        """How many tokens the model attends to (prompt plus output), where known."""
        return None

    # --- model ------------------------------------------------------------------------------

    @abstractmethod
    def generate(self, request: GenerateRequest) -> Iterator[list[Generated]]:
        """Greedy continuations of every prompt, each up to its own limit, ending at the
        first of `stop_ids`; yielded batch by batch (in any order: `Generated.index` says
        which prompt) so log-probs can be streamed to disk and memory stays flat. An engine
        may also end a row once it completes one of the `stop_strings` (it must not end it
        earlier): the runner cuts every row at its first stop string whatever the engine
        did."""

    @abstractmethod
    def score(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int,
    ) -> Iterator[Any]:
        """Teacher forcing: per pair, in order, the log-probs [len(continuation), V] at the
        positions that predict each continuation token."""

    def loglikelihood(
        self, requests: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int
    ) -> list[tuple[float, bool]]:
        """Per (context ids, continuation ids): the continuation's summed log-probability
        and whether greedy decoding would produce it (lm-eval's multiple-choice path)."""
        prompts = [c for c, _ in requests]
        conts = [t for _, t in requests]
        out = []
        for cont, logp in zip(conts, self.score(prompts, conts, batch_size), strict=True):
            picked = [float(logp[i, t]) for i, t in enumerate(cont)]
            greedy = all(int(logp[i].argmax()) == t for i, t in enumerate(cont))
            out.append((sum(picked), greedy))
        return out

    @abstractmethod
    def fingerprint(self) -> str:
        """A fingerprint of the weights this backend runs."""

    def close(self) -> None:  # noqa: B027 - optional hook: most engines free on collection
        """Free the model (engines with servers or native handles override this)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def checkpoint_fingerprint(path: str, ignore: tuple[str, ...] = ()) -> str:
    """A content fingerprint of a checkpoint dir or a single-file model (or `hub:<id>`).

    Files up to 64 MiB are hashed whole; larger ones by name, size and their first and
    last 16 MiB, so fingerprinting a 15 GB checkpoint takes a second, not a minute.
    Files named in `ignore` (bookkeeping such as timings) do not count."""
    root = Path(path)
    if root.is_file():  # a single-file model (GGUF)
        root, chosen = root.parent, [root]
    elif root.is_dir():
        files = (p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        chosen = sorted(f for f in files if f.name not in ignore)
    else:
        return f"hub:{path}"
    h = hashlib.sha256()
    for file in chosen:
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


class NonFiniteLogits(HarnessError):
    """A model computed NaN or infinite logits: whatever it then decodes is no answer, and
    log-probs from it no distance. `prompts`: positions in the request; `step`: the generated
    token (None: teacher forcing)."""

    def __init__(
        self, model: str, prompts: Sequence[int], step: int | None, message: str = ""
    ) -> None:
        self.model, self.prompts, self.step = model, list(prompts), step
        where = "in teacher forcing" if step is None else f"at generated token {step + 1}"
        super().__init__(
            message
            or f"model {model!r}: NaN or infinite logits {where} of "
            f"prompt(s) {self.prompts[:5]}: the run stops"
        )


class TokenizerMismatch(HarnessError):
    """A prompt cannot be fed identically: a candidate's tokenizer maps it to other ids than
    the baseline's, its stop ids differ, or a model's tokenizer cannot render it."""


class InvalidAnswer(HarnessError):
    """An engine's answer that breaks the request's contract (a server's id outside the
    vocabulary, a log-prob above 0 or not a number, a body of the wrong shape). `prompt`: its
    position in the request, named as an item by the run stage."""

    def __init__(self, model: str, url: str, prompt: int | None, field: str, problem: str) -> None:
        self.model, self.url, self.prompt, self.field = model, url, prompt, field
        self.problem = problem
        super().__init__(self.line())

    def named(self, item: str | None) -> InvalidAnswer:
        """The same error, its message naming the item (file:line: id) instead of a position."""
        if item is not None:
            self.args = (self.line(item),)
        return self

    def line(self, item: str | None = None) -> str:
        where = "" if self.prompt is None else f" (prompt {self.prompt} of the request)"
        where = "" if item else where
        text = (
            f"model {self.model!r}: the server at {self.url} answered with an invalid "
            f"{self.field}{where}: {self.problem}; nothing was scored"
        )
        return f"{item}: {text}" if item else text
