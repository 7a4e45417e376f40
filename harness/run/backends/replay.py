"""What was served, replayed (`backend = "replay"`): a candidate whose outputs are the answers a
request log recorded, paired with the baseline regenerated on the same requests. This is how a
team asks what its deployed model (quantized or not, on whatever engine served it) actually
answered, next to full precision.

`log` is an eval set whose items carry `logged_output` (`harness traffic import` keeps the
logged answer there; `harness traffic sample` keeps it in the sample). `path` is a local
tokenizer folder of the served model, which must share the baseline's vocabulary: each item's
prompt is rendered and tokenized here exactly as the baseline's is, and each prompt's ids find
its logged answer, so the seam stays token ids. The answer is tokenized with the same tokenizer
(the ids an engine generates are the ones its text tokenizes to, except where a model chose a
non-canonical split: docs/traffic.md says how often that happened on llama.cpp's Q8_0). An
answer longer than the item's token limit is cut there and counts as cut off, as a generation
would; a shorter one ended on the turn's stop id; one that holds a stop id (its end-of-turn
text written mid-answer) ends there, as a generation would have.

There are no log-probs (`Capabilities.top_k` None): the distribution metrics of a replayed
candidate are n/a; reference scorers and reference-free meaning classes apply as to any
candidate. Nothing is cached (`in_process` False): replaying is reading a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.records import ModelSpec
from harness.records.errors import HarnessError
from harness.records.schema import setting
from harness.run.backends.base import (
    Backend,
    Capabilities,
    Generated,
    GenerateRequest,
    ModelLoadError,
    Preflight,
)
from harness.run.backends.hf import HFTokenizerMethods, end_of_turn, load_tokenizer


class NotLogged(HarnessError):
    """A prompt the log holds no answer for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySettings:
    """The replay engine's own key, in the candidate's table."""

    log: str = setting(
        doc="an eval set whose items carry `logged_output` (`harness traffic import`)",
        path="file",
    )


class ReplayBackend(HFTokenizerMethods, Backend):
    capabilities = Capabilities(full_vocab_logprobs=False, top_k=None)
    in_process = False
    generates = False
    settings = ReplaySettings

    @classmethod
    def preflight(cls, spec: ModelSpec) -> Preflight:
        replay = cls(spec)
        with replay:
            return Preflight(
                None,
                replay.prompt_ids,
                lambda item: tuple(replay.prompt_ids(item)) in replay.answers,
            )

    def __init__(self, spec: ModelSpec) -> None:
        from harness.inputs.evalset import load_evalset

        super().__init__(spec)
        if not isinstance(spec.settings, ReplaySettings):
            raise ModelLoadError(f"model {spec.name!r}: backend 'replay' needs `log`")
        self.log = Path(spec.settings.log)
        self._tok = load_tokenizer(spec, "path must be a local tokenizer dir of the served model")
        self._turn = end_of_turn(self._tok)
        self.answers: dict[tuple[int, ...], str] = {}
        unlogged = []
        for item in load_evalset([str(self.log)]):
            if item.logged_output is None:
                unlogged.append(item.id)
                continue
            key = tuple(self.prompt_ids(item))
            if self.answers.get(key, item.logged_output) != item.logged_output:
                raise ModelLoadError(
                    f"model {spec.name!r}: {self.log}: item {item.id!r} has the prompt of an "
                    "earlier item with another logged answer: which one was served is unclear"
                )
            self.answers[key] = item.logged_output
        if not self.answers:
            raise ModelLoadError(f"model {spec.name!r}: {self.log}: no item has a logged_output")
        self.unlogged = unlogged

    def fingerprint(self) -> str:
        return hashlib.sha256(self.log.read_bytes()).hexdigest()[:20]

    def generate(self, request: GenerateRequest) -> Iterator[list[Generated]]:
        prompts, limits, stop_ids, batch_size, *_ = request
        batch: list[Generated] = []
        for i, (prompt, limit) in enumerate(zip(prompts, limits, strict=True)):
            answer = self.answers.get(tuple(prompt))
            if answer is None:
                raise NotLogged(
                    f"model {self.spec.name!r}: prompt {i + 1} of {len(prompts)} has no logged "
                    f"answer in {self.log} (a replayed candidate runs only on logged requests)"
                )
            ids = tuple(self.encode(answer))
            # a logged answer that holds a stop (its end-of-turn text mid-answer, which the
            # tokenizer reads as the stop id) was served up to there, as a generation stops
            stops = set(stop_ids)
            cut = next((k for k, t in enumerate(ids) if t in stops), None)
            if cut is not None and cut < limit:
                batch.append(Generated(index=i, ids=ids[:cut], stop_id=ids[cut]))
            elif len(ids) > limit:
                batch.append(Generated(index=i, ids=ids[:limit], stop_id=None))
            else:
                stop = stop_ids[-1] if stop_ids else None  # the turn's end, where there is one
                batch.append(Generated(index=i, ids=ids, stop_id=stop))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int,
    ) -> Iterator[Any]:
        raise HarnessError(f"model {self.spec.name!r}: a replayed log has no log-probs to score")
