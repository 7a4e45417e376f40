"""What a model run produces: greedy generations, per-token distances to the baseline, and
lm-eval's per-sample results. Plain values only: log-prob tensors never leave the run stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    item_id: str
    output: str
    output_ids: tuple[int, ...]
    output_tokens: tuple[str, ...] = ()  # each id decoded alone, to show where outputs split
    reference_nll: float | None = None  # mean NLL per token of the single reference, if any
    # Ended at max_new_tokens, on no stop id or stop string: no final answer yet.
    cut_off: bool = False
    prompt_tokens: int | None = None  # the prompt's length in the ids the model was fed


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenStats:
    """Per generated token of one item, both models teacher-forced on the baseline's output."""

    kld: tuple[float, ...]
    top1_agree: tuple[bool, ...]
    delta_p: tuple[float, ...]  # p_cand(token) - p_base(token)
    nll_base: tuple[float, ...]
    nll_cand: tuple[float, ...]
    # The candidate's log-probs were its top k per position (a server): each KLD is over
    # those k plus one tail bucket, a lower bound of the true KLD, and NLLs of tokens outside
    # the k are bounds. None: full-vocabulary log-probs, exact.
    kld_top_k: int | None = None

    @property
    def first_top1_divergence(self) -> int | None:
        return next((i for i, ok in enumerate(self.top1_agree) if not ok), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One lm-eval doc as run on one model."""

    task: str
    doc_id: int
    doc_hash: str
    prompt: str  # lm-eval's rendered context (first request)
    target: str
    output: str  # the generated text, or the chosen option of a multiple-choice task
    metric: str
    score: float | None  # the metric's value when it lies in [0, 1]
    choices: tuple[str, ...] = ()  # multiple choice: the options...
    loglikelihoods: tuple[float, ...] = ()  # ...and this model's log-likelihood of each
    difficulty: str = "common"  # from the doc's own `difficulty` field, when it has one
    weight: float | None = None  # from the doc's own `weight` field, when it has one

    @property
    def key(self) -> str:
        return f"{self.task}/{self.doc_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRun:
    name: str
    generations: tuple[Generation, ...]
    seconds: float
    samples: tuple[Sample, ...] = ()  # lm-eval per-sample results, when tasks are configured
    tokens_per_second: float | None = None  # generated tokens over greedy-generation time
    peak_memory_mb: float | None = None  # the engine's peak resident memory (None: a server)
    reused: bool = False  # read from the run cache (`seconds` is then the run that made it)
    # Prompts this model's own tokenizer splits into other ids than the baseline's (it was fed
    # the baseline's: a served model that tokenizes text itself would see the other ids).
    split_differently: int = 0
    own_stop_ids: tuple[int, ...] = ()  # the stop ids the model itself names (eos, end of turn)
