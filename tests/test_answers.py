"""Reference-free items: final answers compared before meaning (hand-computed cases)."""

from __future__ import annotations

import pytest

from harness.analysis.answers import changed, detect, final_answer, judged, kind
from harness.analysis.extract import final_number
from harness.analysis.metrics import summarize
from harness.analysis.pairing import pair
from harness.analysis.scorers import Scorer
from harness.records import EvalItem, Generation, Outcome, Source, StatsSettings


def free(kind_tag: str | None, extract: str | None = None) -> EvalItem:
    tags = (f"answer:{kind_tag}",) if kind_tag else ()
    return EvalItem(
        id="x",
        source=Source("t.jsonl", 1),
        prompt="p",
        scorer=Scorer.AGREEMENT,
        tags=tags,
        extract=extract,
    )


@pytest.mark.parametrize(
    ("tag", "output", "answer"),
    [
        ("number", "47 + 38 = 85. So the answer is 85.", "85"),
        ("number", "First 4,582 plus 3,419 gives 8,001", "8001"),
        ("number", "The sum is ten.", "10"),
        ("number", "No digits here.", None),
        ("boolean", "No, 91 = 7 x 13, so yes it is divisible.", "yes"),
        ("boolean", "False. The sun is a star.", "no"),
        ("boolean", "It depends.", None),
        ("choice", "The answer is (C).", "C"),
        (
            "code",
            "Here:\n```python\ndef add(a, b):  \n    return a + b\n\n```\nDone.",
            "def add(a, b):\n    return a + b",
        ),
        ("code", "def f():\n    return 1\n", "def f():\n    return 1"),
        ("code", "def f():\n    return 1\n```\nThis returns 1.", "def f():\n    return 1"),
        (
            "code",
            "```js\nf(x) {\n  if (x) {\n    g();\n  }\n}\n```",
            "f(x) {\n    if (x) {\n        g();\n    }\n}",
        ),
        ("code", "def f():\n\tif a:\n\t\treturn 1", "def f():\n    if a:\n        return 1"),
        ("json", 'Sure: {"age": 31, "name": "Ana"} as asked', '{"age":31,"name":"Ana"}'),
        ("json", 'It is:\n```json\n{"name": "Ana",\n "age": 31}\n```', '{"age":31,"name":"Ana"}'),
        ("json", "[2, 4, 6, 8, 10]", "[2,4,6,8,10]"),
        ("json", "{not json} and none", None),
    ],
)
def test_final_answers_by_kind(tag: str, output: str, answer: str | None) -> None:
    assert final_answer(free(tag), output) == answer


def test_kind_from_tag_or_regex_or_none() -> None:
    assert kind(free("number")) == "number"
    assert kind(free(None, extract=r"Answer: (\w+)")) == "regex"
    assert final_answer(free(None, extract=r"Answer: (\w+)"), "Answer: Paris.") == "Paris"
    assert kind(free(None)) is None and final_answer(free(None), "10") is None
    assert kind(free("unknown-kind")) is None


def test_changed_only_when_both_ended() -> None:
    item = free("number")
    assert changed(item, "The sum is 10.", "The sum is 11.", False, False) == ("10", "11")
    assert changed(item, "The sum is 10.", "It is 10 in total.", False, False) is None
    # A cut-off output has no final answer yet: its last number is an intermediate one.
    assert changed(item, "The sum is 10.", "First 7 then 3 and", False, True) is None
    assert changed(item, "First 7 then", "The sum is 11.", True, False) is None
    # One answer, one none: changed.
    assert changed(item, "The sum is 10.", "I cannot say.", False, False) == ("10", None)
    # untagged: the kind is detected on the baseline's output (below)
    assert changed(free(None), "10", "11", False, False) == ("10", "11")
    assert changed(free(None), "Paris is lovely.", "Rome is lovely.", False, False) is None


def test_a_changed_answer_is_diverged_whatever_the_cosine() -> None:
    src = Source("t.jsonl", 1)
    items = [
        EvalItem(id="n", source=src, prompt="p", scorer=Scorer.AGREEMENT, tags=("answer:number",)),
        EvalItem(id="s", source=src, prompt="p", scorer=Scorer.AGREEMENT, tags=("answer:number",)),
        EvalItem(id="c", source=src, prompt="p", scorer=Scorer.AGREEMENT, tags=("answer:number",)),
        EvalItem(id="p", source=src, prompt="p", scorer=Scorer.AGREEMENT),
    ]
    said = "The sum is 10."
    base = [
        Generation(item_id="n", output=said, output_ids=(1,)),
        Generation(item_id="s", output=said, output_ids=(1,)),
        Generation(item_id="c", output=said, output_ids=(1,)),
        Generation(item_id="p", output="A calm sea.", output_ids=(1,)),
    ]
    cand = [
        Generation(item_id="n", output="The sum is 11.", output_ids=(2,)),
        Generation(item_id="s", output="So, it is 10.", output_ids=(2,)),
        Generation(item_id="c", output="Adding 7 and", output_ids=(2,), cut_off=True),
        Generation(item_id="p", output="A quiet sea.", output_ids=(2,)),
    ]
    meaning = {"n": 0.95, "s": 0.9, "c": 0.9, "p": 0.9}
    n, s, c, p = pair(items, base, cand, meaning=meaning, threshold=0.8)
    assert (n.outcome, n.answer_change) == (Outcome.DIVERGED, ("10", "11"))
    assert (s.outcome, s.answer_change) == (Outcome.EQUIVALENT, None)  # same answer: by meaning
    assert (c.outcome, c.answer_change, c.candidate.cut_off) == (Outcome.EQUIVALENT, None, True)
    assert (p.outcome, p.answer_change) == (Outcome.EQUIVALENT, None)  # no answer kind
    m = summarize([n, s, c, p], StatsSettings())
    # An all reference-free set is summarized: shares judged, flips n/a (never a reassuring 0).
    assert m["weighted_accuracy"] is None and m["regressions"] is None
    assert m["mcnemar_p"] is None and m["weighted_regression_share"] is None
    assert (m["free_diverged"], m["free_equivalent"], m["answer_changes"], m["cut_off"]) == (
        1,
        3,
        1,
        1,
    )
    assert m["diverged_share"] == pytest.approx(0.25)


def ask(prompt: str) -> EvalItem:
    return EvalItem(id="x", source=Source("t.jsonl", 1), prompt=prompt, scorer=Scorer.AGREEMENT)


OPTIONS = "Which is a prime?\nA) 4\nB) 6\nC) 7\nD) 9"
CODE = "```python\ndef add(a, b):\n    return a + b\n```"


@pytest.mark.parametrize(
    ("prompt", "base", "cand", "kind_", "change"),
    [
        # the peer check's two "equivalent" items (issue 35): numbers that differ
        (
            "What is 1,234,567 times 2,463?",
            "The answer is 3,041,621,621.",
            "The answer is 3,041,623,680.",
            "number",
            ("3041621621", "3041623680"),
        ),
        (
            "What is 5 divided by 8?",
            "The result is 20.",
            "The result is 0.625",
            "number",
            ("20", "0.625"),
        ),
        # the same number in other words: no change
        ("How many legs?", "A spider has 8 legs. So 8.", "It has 8.", "number", None),
        ("Is 7 prime?", "Yes, 7 is prime.", "No. It is not.", "boolean", ("yes", "no")),
        ("Is 7 prime?", "**Yes** - only 1 and 7 divide it", "Yes.", "boolean", None),
        (OPTIONS, "The answer is C) 7.", "(D) 9", "choice", ("C", "D")),
        (
            "Write add.",
            CODE,
            CODE.replace("a + b", "a - b"),
            "code",
            ("def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"),
        ),
        ('Give {"x": 1} back.', '{"x": 1}', '{ "x" : 1 }', "json", None),
        ('Give {"x": 1} back.', '{"x": 1}', '{"x": 2}', "json", ('{"x":1}', '{"x":2}')),
        # a detected kind compares only when the candidate answers in it too
        ("Is 7 prime?", "Yes, it is.", "It is prime, yes.", "boolean", None),
        ("What is 6 times 7?", "6 times 7 is 42.", "I am not sure.", "number", None),
    ],
)
def test_an_untagged_item_has_its_answer_kind_detected(
    prompt: str, base: str, cand: str, kind_: str, change: tuple[str, str] | None
) -> None:
    item = ask(prompt)
    assert detect(item, base) == kind_
    got = judged(item, base, cand, False, False)
    assert got.kind == f"detected:{kind_}" and got.change == change


@pytest.mark.parametrize(
    "base",
    [
        "Paris is the capital of France.",
        "Here are three tips: sleep well, eat well, walk daily.",
        "A is the first letter.",  # a letter, but the prompt lists no options
        "Noted, I will do that.",  # "No" is not the opening word
        "Version 3 of the tool added plots, and much more besides",  # a number, not at the end
    ],
)
def test_outputs_without_a_final_answer_are_judged_by_meaning(base: str) -> None:
    item = ask("Tell me something.")
    assert detect(item, base) is None
    assert judged(item, base, base + " Indeed.", False, False).change is None


def test_final_numbers_are_compared_whatever_the_kind() -> None:
    """Both outputs hold numbers and their final numbers differ: changed, even where the
    detected answer (the opening yes, the code block) agrees."""
    item = ask("Is it prime?")
    got = judged(item, "Yes, 7 is prime.", "Yes, 9 is prime.", False, False)
    assert got.kind == "detected:number" and got.change == ("7", "9")
    same = judged(item, "Yes, 7 is prime.", "Yes: 7 is a prime.", False, False)
    assert same.kind == "detected:boolean" and same.change is None
    code = judged(ask("Write it."), CODE + " It returns 5.", CODE + " It returns 6.", False, False)
    assert code.kind == "detected:number" and code.change == ("5", "6")
    same = judged(
        ask("Write it."), CODE + " Try add(1, 2).", CODE + " E.g. add(1, 2)", False, False
    )
    assert same.kind == "detected:code" and same.change is None


OUTPUTS = [
    "The answer is 3,041,621,621.",
    "The answer is 3,041,623,680.",
    "1,234,567 times 2,463 is 3,041,621,621",
    "Yes, 7 is prime.",
    "Yes, 9 is prime.",
    "No.",
    "The result is 20.",
    "The result is 0.625",
    "Twenty.",
    CODE + " It returns 5.",
    CODE + " It returns 6.",
    '{"total": 12}',
    '{"total": 13}',
    "Paris is the capital.",
    "It is Paris, the capital of France.",
]


def test_no_pair_with_different_final_numbers_is_equivalent_or_identical() -> None:
    """Issue 35's acceptance, as an invariant over every ordered pair of outputs above (the
    embedding says "equivalent" to all of them): where both ended on a stop and their final
    numbers differ, the item is diverged."""
    src = Source("t.jsonl", 1)
    for i, a in enumerate(OUTPUTS):
        for j, b in enumerate(OUTPUTS):
            item = EvalItem(id="x", source=src, prompt="Compute it.", scorer=Scorer.AGREEMENT)
            [p] = pair(
                [item],
                [Generation(item_id="x", output=a, output_ids=(i,))],
                [Generation(item_id="x", output=b, output_ids=(j,))],
                meaning={"x": 0.99},
                threshold=0.8,
            )
            x, y = final_number(a), final_number(b)
            if x is not None and y is not None and x != y:
                assert p.outcome == Outcome.DIVERGED, (a, b)
