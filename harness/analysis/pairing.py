"""Pair the baseline and a candidate item by item: outcome, agreement, word diff."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rapidfuzz.distance import Levenshtein

from harness.analysis import answers, toolcalls
from harness.analysis.scorers import (
    extracted,
    is_right,
    reference_free,
    score,
    score_baseline,
    word_similarity,
    words,
)
from harness.records import (
    DEFAULT_WEIGHT,
    Difficulty,
    EvalItem,
    Generation,
    Option,
    Outcome,
    PairedItem,
    Sample,
    Side,
    Source,
    TokenStats,
)
from harness.records.errors import HarnessError
from harness.records.settings import DEFAULT_EQUIVALENCE


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def outcome(base: float | None, cand: float | None, identical: bool) -> Outcome:
    b, c = is_right(base), is_right(cand)
    if b is None or c is None:
        return Outcome.UNSCORABLE
    if b and not c:
        return Outcome.REGRESSION
    if c and not b:
        return Outcome.IMPROVEMENT
    return Outcome.IDENTICAL if identical else Outcome.CHANGED


def by_meaning(identical: bool, meaning: float | None, threshold: float) -> Outcome:
    """A reference-free item: the same output, the same meaning, or another meaning."""
    if identical:
        return Outcome.IDENTICAL
    if meaning is None:
        return Outcome.UNSCORABLE
    return Outcome.EQUIVALENT if meaning >= threshold else Outcome.DIVERGED


def _side(item: EvalItem, g: Generation, value: float | None) -> Side:
    return Side(
        output=g.output,
        score=value,
        output_ids=g.output_ids,
        output_tokens=g.output_tokens,
        reference_nll=g.reference_nll,
        extracted=_shown(item, g.output),
        cut_off=g.cut_off,
        prompt_tokens=g.prompt_tokens,
        broken=toolcalls.problem(item, g.output) if toolcalls.structured(item) else None,
    )


def pair(
    items: Sequence[EvalItem],
    base: Sequence[Generation],
    cand: Sequence[Generation],
    tokens: Sequence[TokenStats] | None = None,
    meaning: Mapping[str, float] | None = None,
    threshold: float = DEFAULT_EQUIVALENCE,
) -> list[PairedItem]:
    """One PairedItem per item, in item order; generations (and the candidate's token
    stats, when measured) must follow the same order. Reference-free items get no score (they
    never enter accuracy or flips): their outcome is judged by `meaning`, the embedding
    similarity of the two outputs, against `threshold`."""
    out = []
    for i, (item, b, c) in enumerate(zip(items, base, cand, strict=True)):
        if not (item.id == b.item_id == c.item_id):
            raise PairingError(f"generations out of order at item {item.id!r}")
        identical = b.output == c.output
        similar: float | None = None
        change = answer_kind = None
        if reference_free(item):
            b_score = c_score = None
            judged = answers.judged(item, b.output, c.output, b.cut_off, c.cut_off)
            change, answer_kind = (None if identical else judged.change), judged.kind
            similar = 1.0 if identical else (meaning or {}).get(item.id)
            result = Outcome.DIVERGED if change else by_meaning(identical, similar, threshold)
        else:
            b_score, c_score = score_baseline(item, b.output), score(item, c.output)
            result = outcome(b_score, c_score, identical)
            if toolcalls.structured(item) and not identical:  # scored, and its calls shown
                judged = answers.judged(item, b.output, c.output, b.cut_off, c.cut_off)
                if judged.kind in ("tool", "fields"):
                    change, answer_kind = judged.change, judged.kind
        out.append(
            PairedItem(
                item=item,
                baseline=_side(item, b, b_score),
                candidate=_side(item, c, c_score),
                outcome=result,
                similarity=word_similarity(b.output, c.output),
                first_divergence=first_divergence(b.output_ids, c.output_ids),
                tokens=None if tokens is None else tokens[i],
                meaning=similar,
                answer_change=change,
                answer_kind=answer_kind,
            )
        )
    return out


def _shown(item: EvalItem, output: str) -> str | None:
    """The extracted answer, when extraction changed what the scorer saw (else None)."""
    answer = extracted(item, output)
    return None if answer is not None and answer.strip() == output.strip() else answer


def diff_ops(base: str, cand: str) -> tuple[list[list[str]], list[list[str]]]:
    """A word-level diff as data: (baseline side, candidate side), each a list of
    [op, text] runs: "=" kept, "-" lost by the candidate, "+" added by it. Adjacent edits
    merge into one run. The report builds DOM text nodes from it; nothing here is markup."""
    a, b = words(base), words(cand)
    left: list[list[str]] = []
    right: list[list[str]] = []
    for op in Levenshtein.opcodes(a, b):
        old = " ".join(a[op.src_start : op.src_end])
        new = " ".join(b[op.dest_start : op.dest_end])
        if op.tag == "equal":
            left.append(["=", old])
            right.append(["=", new])
            continue
        for side, mark, text in ((left, "-", old), (right, "+", new)):
            if not text:
                continue
            if side and side[-1][0] == mark:
                side[-1][1] += " " + text
            else:
                side.append([mark, text])
    return left, right


class PairingError(HarnessError):
    """lm-eval samples of two models do not line up (other docs, or the same id, other doc)."""


def sample_item(s: Sample) -> EvalItem:
    """An lm-eval sample as an item of the report: lm-eval's rendered prompt, its target."""
    difficulty = Difficulty(s.difficulty)
    return EvalItem(
        id=f"lm_eval/{s.key}",
        source=Source(f"lm_eval:{s.task}", s.doc_id),
        prompt=s.prompt or " ",
        reference=(s.target or " ",),
        difficulty=difficulty,
        weight=s.weight if s.weight is not None else DEFAULT_WEIGHT[difficulty],
        tags=("lm_eval", s.task),
    )


def pair_samples(base: Sequence[Sample], cand: Sequence[Sample]) -> list[PairedItem]:
    """Pair lm-eval samples by task and doc id, checking the doc hash; scores are lm-eval's."""
    by_key = {s.key: s for s in cand}
    if len(by_key) != len(cand) or set(by_key) != {s.key for s in base}:
        raise PairingError("lm-eval samples of baseline and candidate cover different docs")
    out = []
    for b in base:
        c = by_key[b.key]
        if c.doc_hash != b.doc_hash:
            raise PairingError(f"lm-eval {b.key}: the doc differs between the two runs (doc hash)")
        options = tuple(
            Option(
                text=text,
                baseline_loglikelihood=bl,
                candidate_loglikelihood=cl,
                gold=text == b.target,
            )
            for text, bl, cl in zip(b.choices, b.loglikelihoods, c.loglikelihoods, strict=True)
        )
        out.append(
            PairedItem(
                item=sample_item(b),
                baseline=Side(output=b.output, score=b.score),
                candidate=Side(output=c.output, score=c.score),
                outcome=outcome(b.score, c.score, b.output == c.output),
                similarity=word_similarity(b.output, c.output),
                first_divergence=None,
                options=options,
            )
        )
    return out
