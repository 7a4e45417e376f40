"""Summaries: slices, counts, and zero scored items as an error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.analysis.metrics import NothingScored, length_bucket, summarize
from harness.records import (
    Difficulty,
    EvalItem,
    Outcome,
    PairedItem,
    Side,
    SliceSettings,
    Source,
    StatsSettings,
)
from harness.records.errors import RecordError

STATS = StatsSettings(seed=0)


def paired(
    id_: str,
    base: float | None,
    cand: float | None,
    outcome: Outcome,
    hard: bool = False,
    tags: tuple[str, ...] = (),
) -> PairedItem:
    item = EvalItem(
        id=id_,
        source=Source("t.jsonl", 1),
        prompt="p",
        reference=("r",),
        tags=tags,
        difficulty=Difficulty.HARD if hard else Difficulty.COMMON,
        weight=3.0 if hard else 1.0,
    )
    same = outcome is Outcome.IDENTICAL
    return PairedItem(
        item=item,
        baseline=Side(output="a", score=base),
        candidate=Side(output="a" if same else "b", score=cand),
        outcome=outcome,
        similarity=1.0 if same else 0.0,
        first_divergence=None if same else 0,
    )


def test_summary_by_hand() -> None:
    rows = [
        paired("h1", 1.0, 0.0, Outcome.REGRESSION, hard=True, tags=("x",)),
        paired("h2", 1.0, 1.0, Outcome.IDENTICAL, hard=True),
        paired("c1", 0.0, 1.0, Outcome.IMPROVEMENT, tags=("x",)),
        paired("c2", 1.0, 1.0, Outcome.IDENTICAL),
        paired("u1", None, None, Outcome.UNSCORABLE),
    ]
    m = summarize(rows, STATS)
    # weights 3, 3, 1, 1 over scored items: baseline (3+3+0+1)/8, candidate (0+3+1+1)/8
    assert m.weighted_accuracy.baseline == pytest.approx(7 / 8)
    assert m.weighted_accuracy.candidate == pytest.approx(5 / 8)
    assert m.weighted_accuracy.drop == pytest.approx(2 / 8)
    assert m.hard_accuracy is not None and m.hard_accuracy.drop == pytest.approx(0.5)
    assert (m.regressions, m.improvements, m.hard_regressions) == (1, 1, 1)
    assert m.weighted_regression_share == pytest.approx(3 / 8)
    assert m.mcnemar_p == 1.0
    assert (m.items, m.scored, m.unscorable) == (5, 4, 1)
    assert m.identical_share == pytest.approx(2 / 5)
    slices = {s.slice: s for s in m.slices}
    assert list(slices) == ["all", "difficulty=common", "difficulty=hard", "tag=x"]
    assert (slices["tag=x"].regressions, slices["tag=x"].improvements) == (1, 1)


def test_zero_scored_items_is_an_error() -> None:
    with pytest.raises(NothingScored):
        summarize([paired("u1", None, None, Outcome.UNSCORABLE)], STATS)


def test_reference_free_items_stay_out_of_accuracy_and_flips() -> None:
    """Weights 1, 1, 3 over the three judged reference-free items: equivalent 1/5, diverged
    3/5; the accuracy, flips and McNemar are those of the reference items alone."""
    free = EvalItem(id="f", source=Source("t", 1), prompt="p", scorer="agreement")
    judged = [
        PairedItem(
            item=free,
            baseline=Side(output="a", score=None),
            candidate=Side(output="a", score=None),
            outcome=Outcome.IDENTICAL,
            similarity=1.0,
            first_divergence=None,
        ),
        PairedItem(
            item=replace(free, id="g"),
            baseline=Side(output="a", score=None),
            candidate=Side(output="b", score=None),
            outcome=Outcome.EQUIVALENT,
            similarity=0.0,
            first_divergence=0,
        ),
        PairedItem(
            item=replace(free, id="h", weight=3.0),
            baseline=Side(output="a", score=None),
            candidate=Side(output="c", score=None),
            outcome=Outcome.DIVERGED,
            similarity=0.0,
            first_divergence=0,
        ),
    ]
    reference = [
        paired("r1", 1.0, 0.0, Outcome.REGRESSION),
        paired("r2", 1.0, 1.0, Outcome.IDENTICAL),
    ]
    m = summarize(reference + judged, STATS)
    alone = summarize(reference, STATS)
    assert m.weighted_accuracy == alone.weighted_accuracy and m.regressions == 1
    assert (m.scored, m.unscorable, m.reference_free) == (2, 0, 3)
    assert m.equivalent_share == pytest.approx(1 / 5) and m.diverged_share == pytest.approx(3 / 5)
    assert alone.diverged_share is None
    slices = {s.slice: s for s in m.slices}
    assert slices["kind=reference-free"].items == 3 and slices["kind=reference-free"].diverged == 1


def test_the_reference_perplexity_ratio_is_the_exp_of_the_mean_nll_gap_capped_at_e709() -> None:
    def with_nll(id_: str, base: float, cand: float) -> PairedItem:
        p = paired(id_, 1.0, 1.0, Outcome.IDENTICAL)
        return replace(
            p,
            baseline=replace(p.baseline, reference_nll=base),
            candidate=replace(p.candidate, reference_nll=cand),
        )

    # gaps 0.5 and 0.1: exp(0.3)
    m = summarize([with_nll("a", 1.0, 1.5), with_nll("b", 2.0, 2.1)], STATS)
    assert m.reference_ppl_ratio == pytest.approx(1.3498588075760032)
    # a broken model's NLLs (finite logits of 1e37): the ratio is the largest finite exp
    m = summarize([with_nll("a", 1.0, 4.0e36)], STATS)
    assert m.reference_ppl_ratio == pytest.approx(8.218407461554972e307)


def test_length_buckets_by_hand() -> None:
    edges = (128, 512, 2048)
    assert [length_bucket("p", n, edges) for n in (0, 127, 128, 511, 512, 2047, 2048, 9000)] == [
        "p=0-127",
        "p=0-127",
        "p=128-511",
        "p=128-511",
        "p=512-2047",
        "p=512-2047",
        "p=2048+",
        "p=2048+",
    ]
    assert length_bucket("p", 5, ()) == "p=0+"
    with pytest.raises(RecordError, match="increasing"):
        SliceSettings(prompt_tokens=(512, 128))
    with pytest.raises(RecordError, match="increasing"):
        SliceSettings(output_tokens=(0, 16))


def test_items_are_sliced_by_prompt_and_output_length_shortest_first() -> None:
    def sized(id_: str, prompt: int | None, out: int, outcome: Outcome) -> PairedItem:
        p = paired(id_, 1.0, 0.0 if outcome is Outcome.REGRESSION else 1.0, outcome, tags=("x",))
        base = replace(p.baseline, prompt_tokens=prompt, output_ids=tuple(range(out)))
        return replace(p, baseline=base)

    rows = [
        sized("long", 3000, 300, Outcome.REGRESSION),
        sized("mid", 600, 20, Outcome.IDENTICAL),
        sized("short", 10, 3, Outcome.IDENTICAL),
        sized("short2", 100, 16, Outcome.REGRESSION),
        sized("unknown", None, 5, Outcome.IDENTICAL),  # an lm-eval sample: no length slice
    ]
    m = summarize(rows, STATS, SliceSettings())
    slices = {s.slice: s for s in m.slices}
    assert list(slices) == [
        "all",
        "difficulty=common",
        "prompt_tokens=0-127",
        "prompt_tokens=512-2047",
        "prompt_tokens=2048+",
        "output_tokens=0-15",
        "output_tokens=16-63",
        "output_tokens=256+",
        "tag=x",
    ]
    assert slices["prompt_tokens=0-127"].items == 2
    assert slices["prompt_tokens=0-127"].regressions == 1
    assert slices["prompt_tokens=2048+"].regressions == 1
    assert slices["output_tokens=16-63"].items == 2
    # without settings (a summary that asks for none) there are no length slices
    assert not any("tokens=" in s.slice for s in summarize(rows, STATS).slices)


def test_a_column_in_an_undeclared_format_is_refused_in_one_line() -> None:
    from harness.analysis.metrics import Shown
    from harness.render.formats import UnknownFormat, column

    assert column("mean_kld", Shown("mean KLD", "kld")).header == "mean KLD"
    with pytest.raises(UnknownFormat, match=r"metric 'x': column 'h' has format 'bogus', not one"):
        column("x", Shown("h", "bogus"))
