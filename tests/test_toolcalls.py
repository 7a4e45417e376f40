"""Tool calls and structured outputs: read, checked against declarations, compared (hand-made
cases), and an item's conversation rendered for templates with and without tool support."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.analysis import toolcalls
from harness.analysis.answers import judged
from harness.analysis.metrics import summarize
from harness.analysis.pairing import pair
from harness.analysis.scorers import score
from harness.inputs.evalset import EvalsetError, load_evalset, parse_item
from harness.records import EvalItem, Generation, Outcome, Source, StatsSettings
from harness.run.backends.chat import chat_input, supports_tools

from .support.helpers import in_process, write_config
from .support.paths import MINILM, NEEDS_REAL_MODEL, REPO, SMOLLM

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


def item(**fields: Any) -> EvalItem:
    line = {"id": "x", "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    line |= {"scorer": "agreement"} | fields
    return parse_item(line, Source("t.jsonl", 1))


def call(name: str, **args: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


@pytest.mark.parametrize(
    ("output", "parser", "shown", "malformed"),
    [
        (call("get_weather", city="Paris"), "hermes", 'get_weather(city="Paris")', False),
        # arguments as JSON text (OpenAI's own shape), numbers by value, keys sorted
        (
            '<tool_call>{"name": "f", "arguments": "{\\"b\\": 2.0, \\"a\\": 1}"}</tool_call>',
            "hermes",
            "f(a=1, b=2)",
            False,
        ),
        # a list in one tag (SmolLM2 writes this), two tags
        ('<tool_call>[{"name": "a", "arguments": {}}]</tool_call>', "hermes", "a()", False),
        (call("a") + "\n" + call("b", x=[1, 2]), "hermes", "a(); b(x=[1, 2])", False),
        # cut off inside the tag, or JSON that does not parse
        ('<tool_call>{"name": "a", "arguments": {"x"', "hermes", "a malformed call", True),
        # Llama 3 (`parameters`, its python tag a special token already gone), Mistral (a
        # JSON array after its special token), a fenced block
        ('{"name": "a", "parameters": {"x": 1}}', "json", "a(x=1)", False),
        ('[{"name": "a", "arguments": {"x": 1}}, {"name": "b"}]', "json", "a(x=1); b()", False),
        ('```json\n{"name": "a", "arguments": {}}\n```', "json", "a()", False),
        # no call: words, a JSON object that is not a call, a call object without a name
        ("It is sunny in Paris.", "json", "no call", False),
        ('{"city": "Paris"}', "json", "no call", False),
        ('{"name": "Kenji", "age": 51}', "json", "no call", False),  # a person, not a call
        ('{"name": "", "arguments": {}}', "json", "a malformed call", True),
    ],
)
def test_calls_are_read_from_every_family(
    output: str, parser: str, shown: str, malformed: bool
) -> None:
    found = toolcalls.read_calls(output)
    assert (found.parser, toolcalls.show_calls(found), found.malformed) == (
        parser,
        shown,
        malformed,
    )


def test_hermes_calls_read_as_transformers_reads_them() -> None:
    """The anchor: transformers' own response parser, given a Hermes response template."""
    from transformers.utils.chat_parsing import parse_response

    template = {
        "start_anchor": "<|im_start|>assistant\n",
        "fields": {
            "content": {"content": "text"},
            "tool_calls": {
                "open": "<tool_call>",
                "close": "</tool_call>",
                "content": "json",
                "repeats": True,
                "optional": True,
                "transform": {"name": "{content.name}", "arguments": "{content.arguments}"},
            },
        },
    }
    outputs = [
        "Let me check.\n" + call("get_weather", city="Paris", days=3),
        call("a", x=1.5) + call("b", y={"z": [1, None, True]}),
        "No tool needed: 4.",
    ]
    for output in outputs:
        theirs = parse_response(output, template, prefix="").get("tool_calls", [])
        ours = toolcalls.read_calls(output).calls
        assert [(c.name, json.loads(c.arguments)) for c in ours] == [
            (c["name"], c["arguments"]) for c in theirs
        ]


def test_calls_are_checked_against_their_declared_schema() -> None:
    it = item(tools=[WEATHER])
    assert toolcalls.problem(it, call("get_weather", city="Paris", days=2)) is None
    assert toolcalls.problem(it, "It is sunny.") is None  # an answer in words keeps it
    assert toolcalls.problem(it, call("get_time")) == "get_time: not a declared function"
    assert toolcalls.problem(it, call("get_weather", days=2)) == (
        "get_weather: the value: 'city' is a required property"
    )
    assert toolcalls.problem(it, call("get_weather", city="P", days="2")) == (
        "get_weather: .days: '2' is not of type 'integer'"
    )
    assert toolcalls.problem(it, '<tool_call>{"name": "get_weather"') == (
        "a call that cannot be read"
    )


def test_structured_outputs_are_parsed_and_checked() -> None:
    it = item(response_format=PERSON)
    assert toolcalls.problem(it, '{"name": "Ann", "age": 31}') is None
    assert toolcalls.problem(it, 'Sure! ```json\n{"name": "Ann", "age": 31}\n```') is None
    assert toolcalls.problem(it, "Ann is 31.") == "no JSON value in the output"
    assert toolcalls.problem(it, "[1, 2]") == "the JSON value is not an object"
    assert toolcalls.problem(it, '{"name": "Ann", "age": "31"}') == (
        ".age: '31' is not of type 'integer'"
    )
    bare = item(response_format={"type": "json_object"})
    assert toolcalls.problem(bare, '{"anything": 1}') is None
    assert toolcalls.problem(bare, '{"anything": ') == "no JSON value in the output"


def test_a_changed_call_is_diverged_with_both_calls_on_the_card() -> None:
    it = item(tools=[WEATHER])
    base, cand = call("get_weather", city="Paris"), call("get_weather", city="Pari")
    got = judged(it, base, cand, False, False)
    assert got.kind == "tool"
    assert got.change == ('get_weather(city="Paris")', 'get_weather(city="Pari")')
    # key order and number spelling are not changes
    same = judged(
        it,
        '<tool_call>{"name": "get_weather", "arguments": {"days": 2, "city": "P"}}</tool_call>',
        '<tool_call>{"arguments": {"city": "P", "days": 2.0}, "name": "get_weather"}</tool_call>',
        False,
        False,
    )
    assert same == judged(it, base, base, False, False)
    assert same.change is None
    # a call dropped for words, a second call added
    assert judged(it, base, "Sunny.", False, False).change == (
        'get_weather(city="Paris")',
        "no call",
    )
    assert judged(it, base, base + call("get_weather", city="Lyon"), False, False).change == (
        'get_weather(city="Paris")',
        'get_weather(city="Paris"); get_weather(city="Lyon")',
    )
    # neither calls: judged as any reference-free output (final numbers here)
    assert judged(it, "It is 20 degrees.", "It is 21 degrees.", False, False).kind == (
        "detected:number"
    )


def test_structured_outputs_are_compared_field_by_field() -> None:
    it = item(response_format=PERSON)
    got = judged(
        it, '{"name": "Ann", "age": 31, "x": 1}', '{"age": 13, "name": "Ann"}', False, False
    )
    assert got.kind == "fields"
    assert got.change == (".age=31; .x present", ".age=13; .x dropped")
    assert judged(it, '{"a": 1, "b": 2}', '{"b": 2.0, "a": 1}', False, False).change is None
    assert judged(it, '{"a": 1}', "no JSON", False, False).change == ('{"a":1}', None)


def test_a_reference_tool_call_scores_exactly() -> None:
    ref = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})
    it = item(tools=[WEATHER], scorer="tool_call", reference=ref)
    assert score(it, call("get_weather", city="Paris")) == 1.0
    assert (
        score(
            it,
            'Sure. <tool_call>{"arguments": {"city": "Paris"}, "name": "get_weather"}</tool_call>',
        )
        == 1.0
    )
    assert score(it, call("get_weather", city="Paris", days=1)) == 0.0
    assert score(it, call("get_weather", city="Paris") * 2) == 0.0  # one call, not two
    assert score(it, "Paris is sunny.") == 0.0
    with pytest.raises(Exception, match="tool_call scorer needs a call"):
        item(tools=[WEATHER], scorer="tool_call", reference="get_weather(Paris)")


def test_schema_invalid_share_is_a_metric_with_an_interval() -> None:
    """Three structured items of weight 1, 1 and 2: the candidate breaks the third's schema
    (2/4 = 50%), the baseline none; the unstructured fourth item counts in neither."""
    items = [
        item(id="a", tools=[WEATHER]),
        item(id="b", response_format=PERSON),
        item(id="c", response_format=PERSON, weight=2),
        item(id="d"),
    ]
    outs_b = [
        call("get_weather", city="P"),
        '{"name": "A", "age": 1}',
        '{"name": "B", "age": 2}',
        "hi",
    ]
    outs_c = [call("get_weather", city="P"), '{"name": "A", "age": 1}', '{"name": "B"}', "hi"]

    def gens(outs: list[str]) -> list[Generation]:
        return [
            Generation(item_id=i.id, output=o, output_ids=(1,))
            for i, o in zip(items, outs, strict=True)
        ]

    paired = pair(items, gens(outs_b), gens(outs_c), meaning={"d": 1.0})
    assert [p.candidate.broken for p in paired] == [
        None,
        None,
        "the value: 'age' is a required property",
        None,
    ]
    m = summarize(paired, StatsSettings())
    assert m["structured"] == 3
    assert m["schema_invalid_share"] == pytest.approx(0.5)
    assert m["baseline_schema_invalid_share"] == 0.0
    assert (m["unparsed"], m["baseline_unparsed"]) == (0, 0)  # it parsed: outside its schema
    low, high = m["schema_invalid_share_ci_low"], m["schema_invalid_share_ci_high"]
    assert isinstance(low, float) and isinstance(high, float)
    assert 0.0 <= low < 0.5 < high <= 1.0  # never a zero-width interval at n = 3
    assert paired[2].outcome is Outcome.DIVERGED  # its fields changed too


def test_declarations_are_validated_with_file_line_and_id(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    rows = [
        {"id": "a", "prompt": "x", "tools": [WEATHER], "scorer": "agreement"},
        {
            "id": "b",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"x": 1}],
            "scorer": "agreement",
        },
        {
            "id": "c",
            "messages": [{"role": "user", "content": "x"}],
            "scorer": "agreement",
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 3}}},
        },
        {
            "id": "d",
            "messages": [{"role": "user", "content": "x", "tool_calls": []}],
            "scorer": "agreement",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(EvalsetError) as caught:
        load_evalset([str(path)])
    problems = caught.value.lines()
    assert problems[0] == f"{path}:1: id 'a': tools need a conversation: give messages, not prompt"
    assert problems[1].startswith(f"{path}:2: id 'b': tools[0] must be")
    assert problems[2].startswith(f"{path}:3: id 'c': response_format.json_schema.schema: not a")
    assert problems[3] == (
        f"{path}:4: id 'd': messages[0].tool_calls: only an assistant turn calls tools"
    )


def test_a_conversation_with_calls_renders_for_both_kinds_of_template() -> None:
    it = item(
        tools=[WEATHER],
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Lyon?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "12C"},
            {"role": "user", "content": "And Paris?"},
        ],
    )
    # a template with tool support gets the tools and the calls as data
    messages, tools = chat_input(it, "{% if tools %}{{ tools|tojson }}{% endif %}")
    assert tools == [WEATHER]
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Lyon"},
    }
    assert messages[3] == {"role": "tool", "content": "12C", "tool_call_id": "c1"}
    # one without (SmolLM2's): the harness's tool prompt in the system turn, calls as text
    assert not supports_tools("{{ messages[0]['content'] }}")
    messages, tools = chat_input(it, "{{ messages[0]['content'] }}")
    assert tools is None
    assert messages[0]["content"].startswith("Be brief.\n\nYou may call functions")
    assert '"name": "get_weather"' in messages[0]["content"]
    assert messages[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Lyon"}}</tool_call>',
    }
    assert messages[3] == {"role": "user", "content": "<tool_response>\n12C\n</tool_response>"}
    # a structured output is asked for in words, with its schema
    messages, _ = chat_input(item(response_format=PERSON), None)
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].endswith('"required":["name","age"],"type":"object"}')


@pytest.mark.real
@pytest.mark.browser
@NEEDS_REAL_MODEL
def test_a_logged_tool_call_replayed_shows_its_changed_call_on_the_card(tmp_path: Path) -> None:
    """Two tool requests of evalsets/tools in a proxy's log, one served with a changed call:
    imported as items with their tools, replayed against SmolLM2
    fp32 on transformers, the calls judged, and the report's card says which call changed."""
    from .test_browser import CHROMIUM

    items = [json.loads(x) for x in (REPO / "evalsets/tools/calls.jsonl").read_text().splitlines()]
    chosen = [i for i in items if i["id"] in ("tool-00-get_weather", "tool-21-get_time")]
    served = [("get_weather", {"city": "Pari"}), ("get_time", {"city": "Tokyo"})]
    lines = []
    for n, (item, (name, args)) in enumerate(zip(chosen, served, strict=True)):
        call = {
            "id": "c",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        request = {"model": "m", "messages": item["messages"], "tools": item["tools"]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        response = {"id": f"chatcmpl-{n}", "object": "chat.completion", "choices": [choice]}
        lines.append(json.dumps({"request": request, "response": response}))
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(lines) + "\n")
    pool = tmp_path / "traffic.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(pool))
    assert done.returncode == 0, done.stderr
    imported = [json.loads(x) for x in pool.read_text().splitlines()]
    assert all(i["tools"] == chosen[0]["tools"] for i in imported)
    replay = {"backend": "replay", "path": str(SMOLLM), "log": str(pool)}
    cfg = write_config(
        tmp_path / "c.toml", pool, SMOLLM, {"served": replay},
        {"max_schema_invalid_share": 0.5}, generation={"max_new_tokens": 48, "batch_size": 2},
        agreement={"model": str(MINILM)},
    )  # fmt: skip
    out = tmp_path / "run"
    done = in_process("compare", "--config", str(cfg), "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text())
    changed = [r for r in results["items"] if r["candidates"]["served"]["answer_change"]]
    rows = {r["candidates"]["served"]["answer_change"][0]: r for r in changed}
    assert list(rows) == ['get_weather(city="Paris")']  # Tokyo was served as fp32 calls it
    side = rows['get_weather(city="Paris")']["candidates"]["served"]
    assert side["answer_change"] == ['get_weather(city="Paris")', 'get_weather(city="Pari")']
    assert (side["answer_kind"], side["outcome"]) == ("tool", "diverged")
    metrics = results["candidates"][0]["metrics"]
    assert metrics["calls_changed"] == 1 and metrics["structured"] == 2
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto((out / "report.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        notes = page.locator("#cards .answer-change").all_text_contents()
        browser.close()
    assert notes == ['call changed: get_weather(city="Paris") \u2192 get_weather(city="Pari")']


def test_a_scored_tool_item_shows_its_changed_call_and_keeps_its_scored_outcome() -> None:
    """The currency direction swapped (what SmolLM2's Q8_0 did to tool-16): a regression by
    the reference, and its card says which call changed. A call cut at the token limit is
    judged as served: malformed."""
    ref = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})
    it = item(tools=[WEATHER], scorer="tool_call", reference=ref)
    base, cand = call("get_weather", city="Paris"), call("get_weather", city="Lyon")
    b_gen = Generation(item_id="x", output=base, output_ids=(1,))
    c_gen = Generation(item_id="x", output=cand, output_ids=(2,))
    p = pair([it], [b_gen], [c_gen])[0]
    assert p.outcome is Outcome.REGRESSION
    assert (p.answer_kind, p.answer_change) == (
        "tool",
        ('get_weather(city="Paris")', 'get_weather(city="Lyon")'),
    )
    cut = '<tool_call>{"name": "get_weather", "arguments": {"ci'
    got = judged(it, base, cut, False, True)
    assert got.change == ('get_weather(city="Paris")', "a malformed call")
