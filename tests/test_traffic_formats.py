# Log lines are quoted whole, as the vendors write them: long lines are the data.
# ruff: noqa: E501
"""Every traffic format, one fixture log each in the vendor's documented shape, imported with
the expected counts; tool and structured-output requests kept; one request logged by three
tools counted once.

Where each fixture's shape comes from (the values are ours, written for these tests):
- `openai`: the Chat Completions API reference (request body; the `chat.completion` object,
  with `tool_calls`; the streamed `chat.completion.chunk` objects, as a list and as SSE text);
- `openai-batch`: the Batch API guide (input lines `{custom_id, method, url, body}` for
  `/v1/chat/completions` and `/v1/responses`; output lines `{id, custom_id, response, error}`);
- `openai-responses`: the Responses API reference (`input` items `message`, `function_call`,
  `function_call_output`; `instructions`; flat function `tools`; `text.format`; the `response`
  object's `output` items);
- `anthropic`: the Messages API reference and its tool-use guide (`system`, content blocks
  `text`/`tool_use`/`tool_result`, `tools[].input_schema`, the `message` response, `error`);
- `langfuse`: the public API's observation object (`id`, `traceId`, `type`, `startTime`,
  `model`, `modelParameters`, `input`, `output`, `level`, `metadata`) and the blob-storage
  export's snake_case field reference;
- `litellm`: LiteLLM's StandardLoggingPayload (`id`, `call_type`, `startTime`, `model`,
  `messages`, `response`, `model_parameters`, `metadata.requester_metadata`, `request_tags`,
  `status`);
- `helicone`: `@helicone/export` rows (`request_body`, `response_body`, `response_status`,
  `request_created_at`, `request_properties`), JSONL and `--format json`;
- `openpipe`: OpenPipe's request-log export, including its docs' system-only conversation;
- `vllm`: the lines `vllm/entrypoints/logger.py` writes with `--enable-log-requests
  --enable-log-outputs` ("Received request ...", "Generated response ...").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.inputs.evalset import load_evalset
from harness.inputs.importer import ImportSettings, import_traffic

T0 = 1_764_000_000.0  # 2025-11-24, seconds since the epoch
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
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


@dataclass
class Logged:
    """One production request and what was served; `times` it came in (each its own id)."""

    n: int
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    text: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    times: int = 1
    tags: dict[str, str] = field(default_factory=dict)


def production() -> list[Logged]:
    """40 requests: chat, multi-turn, system prompts, a developer turn, parts lists, tools
    declared and called, tool turns, structured outputs, text completions; some came in
    more than once."""
    out: list[Logged] = []
    for n in range(16):
        msgs: list[dict[str, Any]] = [
            {"role": "user", "content": f"Question {n}: what is {n} + {n + 3}?"}
        ]
        if n % 4 == 1:
            msgs.insert(0, {"role": "system", "content": "Answer briefly."})
        if n % 4 == 2:
            msgs.insert(0, {"role": "developer", "content": "Use plain words."})
        if n % 4 == 3:  # a second turn
            msgs = [
                {"role": "user", "content": [{"type": "text", "text": f"Hi, I am case {n}."}]},
                {"role": "assistant", "content": "Hello!"},
                *msgs,
            ]
        out.append(Logged(n, msgs, text=f"It is {3 * n + 3}.", times=2 if n < 3 else 1))
    for n in range(16, 28):  # tools declared: most called, some answered in words
        city = f"City{n}"
        msgs = [{"role": "user", "content": f"Weather in {city}?"}]
        if n >= 24:  # the call made, its result back, the model answers
            msgs += [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{n}",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": json.dumps({"city": city}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": f"call_{n}", "content": '{"temp": 21}'},
            ]
            out.append(Logged(n, msgs, tools=[WEATHER], text=f"It is 21 in {city}."))
        elif n % 3 == 0:
            out.append(Logged(n, msgs, tools=[WEATHER], text="I cannot tell."))
        else:
            out.append(Logged(n, msgs, tools=[WEATHER], calls=[("get_weather", {"city": city})]))
    for n in range(28, 36):  # structured outputs
        fmt = PERSON if n % 2 else {"type": "json_object"}
        msgs = [{"role": "user", "content": f"Person {n} as JSON."}]
        out.append(
            Logged(n, msgs, response_format=fmt, text=json.dumps({"name": f"P{n}", "age": n}))
        )
    for n in range(36, 40):  # text completions: served raw
        out.append(Logged(n, prompt=f"Once upon a time, story {n}", text=" there was a fox."))
    for r in out:
        r.tags = {"feature": "chat" if r.n < 16 else "agent"}
    return out


def chat_message(r: Logged) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.calls:
        message["tool_calls"] = [
            {
                "id": f"c{r.n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(r.calls)
        ]
    return message


def completion(r: Logged, rid: str, created: float) -> dict[str, Any]:
    if r.prompt is not None:
        choice: dict[str, Any] = {"index": 0, "text": r.text, "finish_reason": "stop"}
        return {
            "id": rid,
            "object": "text_completion",
            "created": int(created),
            "choices": [choice],
        }
    finish = "tool_calls" if r.calls else "stop"
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(created),
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": chat_message(r), "finish_reason": finish}],
    }


def chunks(r: Logged, rid: str) -> list[dict[str, Any]]:
    """The answer streamed: content in pieces, each call's name then its arguments in pieces."""
    out: list[dict[str, Any]] = []

    def chunk(delta: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta}],
        }

    out.append(chunk({"role": "assistant", "content": ""}))
    for k in range(0, len(r.text), 4):
        out.append(chunk({"content": r.text[k : k + 4]}))
    for i, (name, args) in enumerate(r.calls):
        text = json.dumps(args)
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": f"c{i}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        for k in range(0, len(text), 5):
            out.append(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": text[k : k + 5]}}]})
            )
    return out


def chat_request(r: Logged) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini"}
    if r.prompt is not None:
        body["prompt"] = r.prompt
    else:
        body["messages"] = r.messages
    if r.tools:
        body["tools"] = r.tools
    if r.response_format:
        body["response_format"] = r.response_format
    return body


def sightings(requests: list[Logged]) -> list[tuple[Logged, str, float]]:
    """Each time each request came in: (request, its response id, when)."""
    out = []
    for r in requests:
        for k in range(r.times):
            out.append((r, f"chatcmpl-{r.n}-{k}", T0 + 600 * r.n + 60 * k))
    return out


FAILED = [
    # a 429 and a 500 in each format: set aside by their own reason
    {"status": 429, "error": {"message": "Rate limit reached", "type": "requests"}},
    {"status": 500, "error": {"message": "The server had an error", "type": "server_error"}},
]


def write_openai(requests: list[Logged], path: Path, stream_every: int = 3) -> None:
    rows = []
    for k, (r, rid, t) in enumerate(sightings(requests)):
        if r.prompt is None and k % stream_every == 0:  # streamed: its chunks, listed or as SSE
            got = chunks(r, rid)
            response: Any = (
                got
                if k % 2
                else "".join(f"data: {json.dumps(c)}\n\n" for c in got) + "data: [DONE]\n\n"
            )
        else:
            response = completion(r, rid, t)
        rows.append(
            {"timestamp": t, "request": chat_request(r), "response": response, "metadata": r.tags}
        )
    for f in FAILED:
        rows.append(
            {
                "timestamp": T0,
                "request": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                "response": {"error": f["error"]},
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))


def write_litellm(requests: list[Logged], path: Path) -> None:
    rows = []
    for r, rid, t in sightings(requests):
        params: dict[str, Any] = {"temperature": 0}
        if r.tools:
            params["tools"] = r.tools
        if r.response_format:
            params["response_format"] = r.response_format
        rows.append(
            {
                "id": f"litellm-{rid}",
                "call_type": "text_completion" if r.prompt is not None else "acompletion",
                "startTime": t + 0.4,  # LiteLLM stamps its own start, a little later
                "endTime": t + 2.1,
                "model": "gpt-4o-mini",
                "messages": r.prompt if r.prompt is not None else r.messages,
                "response": completion(r, rid, t),
                "model_parameters": params,
                "metadata": {
                    "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
                    "requester_metadata": {"team": "search"},
                    "spend_logs_metadata": {"cost_center": "cc7"},
                },
                "request_tags": ["route:" + r.tags["feature"]],
                "status": "success",
            }
        )
    rows.append(
        {
            "id": "f",
            "call_type": "acompletion",
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "response": None,
            "model_parameters": {},
            "status": "failure",
        }
    )
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))


def write_langfuse(requests: list[Logged], path: Path, array: bool = False) -> None:
    rows = []
    for r, rid, t in sightings(requests):
        given: Any = r.prompt if r.prompt is not None else r.messages
        params: dict[str, Any] = {"temperature": 0}
        if r.tools or r.response_format:
            given = {"messages": r.messages, **({"tools": r.tools} if r.tools else {})}
            if r.response_format:
                params["response_format"] = r.response_format
        stamp = __import__("datetime").datetime.fromtimestamp(t + 1.2, __import__("datetime").UTC)
        rows.append(
            {
                "id": f"obs-{rid}",
                "traceId": f"trace-{rid}",
                "type": "GENERATION",
                "name": "chat",
                "startTime": stamp.isoformat().replace("+00:00", "Z"),
                "model": "gpt-4o-mini",
                "modelParameters": params,
                "input": given,
                "output": chat_message(r) if r.prompt is None else r.text,
                "level": "DEFAULT",
                "metadata": r.tags,
            }
        )
    rows.append(
        {
            "id": "span-1",
            "traceId": "t",
            "type": "SPAN",
            "name": "retrieve",
            "input": {"q": "x"},
            "output": None,
        }
    )
    rows.append(
        {
            "id": "err-1",
            "traceId": "t",
            "type": "GENERATION",
            "input": [{"role": "user", "content": "x"}],
            "output": None,
            "level": "ERROR",
            "statusMessage": "429 Too Many Requests",
        }
    )
    text = json.dumps(rows, indent=1) if array else "".join(json.dumps(x) + "\n" for x in rows)
    path.write_text(text)


def import_(paths: list[Path], **settings: Any) -> tuple[list[dict[str, Any]], Any]:
    return import_traffic(paths, ImportSettings(**({"near_duplicate": 1.0} | settings)))


def check_items(items: list[dict[str, Any]], path: Path) -> None:
    """The written lines are a valid eval set whose tool items carry their declarations."""
    out = path / "set.jsonl"
    out.write_text("".join(json.dumps(i) + "\n" for i in items))
    loaded = load_evalset([str(out)])
    assert len(loaded) == len(items)


def test_the_same_40_requests_from_three_tools_are_40_items_weighted_by_occurrences(
    tmp_path: Path,
) -> None:
    requests = production()
    write_openai(requests, tmp_path / "proxy.jsonl")
    write_litellm(requests, tmp_path / "litellm.jsonl")
    write_langfuse(requests, tmp_path / "langfuse.json", array=True)  # the UI's JSON array
    items, cleaning = import_(
        [tmp_path / "proxy.jsonl", tmp_path / "litellm.jsonl", tmp_path / "langfuse.json"]
    )
    assert cleaning.formats == {"openai": 45, "litellm": 44, "langfuse": 45}
    assert cleaning.set_aside == {
        "failed in production (an error status, no answer)": 2 + 1 + 1,
        "not a generation (a Langfuse SPAN)": 1,
    }
    assert cleaning.bad == []
    assert len(items) == 40
    weights = sorted(i.get("weight", 1) for i in items)
    assert weights == [1] * 37 + [2] * 3  # three requests came in twice; no sighting counted twice
    assert cleaning.sightings_merged == 2 * 43  # each of 43 occurrences seen by two more tools
    # tags merged from every tool's sighting (key:value tags written key=value)
    first = next(i for i in items if "Question 0:" in json.dumps(i))
    assert {"feature=chat", "route=chat", "team=search", "cost_center=cc7"} <= set(first["tags"])
    assert not any("user_api_key" in t for i in items for t in i.get("tags", []))
    check_items(items, tmp_path)


def test_tool_and_structured_requests_become_items_with_their_declarations(tmp_path: Path) -> None:
    requests = production()
    write_openai(requests, tmp_path / "proxy.jsonl")
    items, _ = import_([tmp_path / "proxy.jsonl"])
    by_n = {int(json.dumps(i).split("City")[1][:2]): i for i in items if "City" in json.dumps(i)}
    called = by_n[17]
    assert called["tools"] == [WEATHER]
    assert (
        called["logged_output"]
        == '<tool_call>{"name": "get_weather", "arguments": {"city": "City17"}}</tool_call>'
    )
    answered = by_n[24]  # a tool turn in the conversation: kept, the call as data
    assert answered["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "City24"},
    }
    assert answered["messages"][2] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_call_id": "call_24",
    }
    structured = [i for i in items if "response_format" in i]
    assert len(structured) == 8
    completions = [i for i in items if "prompt" in i]  # text completions stay prompts, served raw
    assert sorted(i["prompt"] for i in completions) == [
        f"Once upon a time, story {n}" for n in range(36, 40)
    ]
    # streamed answers reassembled: every answer logged, chunked or not
    assert all("logged_output" in i for i in items)
    streamed = [i for i in items if "Question 3:" in json.dumps(i.get("messages", ""))]
    assert streamed[0]["logged_output"] == "It is 12."
    check_items(items, tmp_path)


def test_helicone_and_openpipe_keep_tools_and_read_json_arrays(tmp_path: Path) -> None:
    requests = production()[14:34]
    rows = []
    for r, rid, t in sightings(requests):
        rows.append(
            {
                "request_id": f"hl-{rid}",
                "request_created_at": __import__("datetime")
                .datetime.fromtimestamp(t, __import__("datetime").UTC)
                .strftime("%Y-%m-%d %H:%M:%S.%f"),
                "request_body": chat_request(r),
                "response_body": completion(r, rid, t),
                "response_status": 200,
                "request_properties": {"App": "agent"},
            }
        )
    rows.append(
        {
            "request_body": {"messages": [{"role": "user", "content": "x"}]},
            "response_status": 500,
            "response_body": {"error": {}},
        }
    )
    (tmp_path / "helicone.json").write_text(json.dumps(rows))  # --format json: one array
    items, cleaning = import_([tmp_path / "helicone.json"])
    assert cleaning.formats == {"helicone": 21} and len(items) == 20
    assert (
        sum("tools" in i for i in items) == 12 and sum("response_format" in i for i in items) == 6
    )
    # OpenPipe's documented example: a system-only conversation, its answer a bare message
    pipe = {
        "input": {"model": "gpt-4o", "messages": [{"role": "system", "content": "count to 3"}]},
        "output": {"role": "assistant", "content": "1, 2, 3"},
        "tags": {"prompt_id": "counting"},
    }
    (tmp_path / "openpipe.jsonl").write_text(json.dumps(pipe) + "\n")
    items, cleaning = import_([tmp_path / "openpipe.jsonl"])
    assert cleaning.formats == {"openpipe": 1} and items[0]["logged_output"] == "1, 2, 3"
    assert items[0]["messages"] == [{"role": "system", "content": "count to 3"}]


def test_anthropic_messages_bodies(tmp_path: Path) -> None:
    tool = {
        "name": "get_weather",
        "description": "Current weather",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
    rows = [
        {  # a plain question, the system prompt top-level
            "timestamp": "2025-11-24T10:00:00Z",
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "system": "Be terse.",
                "messages": [{"role": "user", "content": "Hello, Claude"}],
            },
            "response": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "Hi!"}],
                "stop_reason": "end_turn",
            },
        },
        {  # a tool call answered
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "tools": [tool],
                "messages": [{"role": "user", "content": "What's the weather in San Francisco?"}],
            },
            "response": {
                "id": "msg_02",
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA"},
                    },
                ],
                "stop_reason": "tool_use",
            },
        },
        {  # the tool's result sent back
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "tools": [tool],
                "messages": [
                    {"role": "user", "content": "What's the weather in San Francisco?"},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "toolu_01",
                                "name": "get_weather",
                                "input": {"location": "San Francisco, CA"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "toolu_01",
                                "content": "15 degrees",
                            }
                        ],
                    },
                ],
            },
            "response": {
                "id": "msg_03",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "It is 15 degrees."}],
            },
        },
        {  # overloaded
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
            },
            "response": {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            },
        },
        {  # an image: set aside
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 10,
                "system": "s",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "iVBOR",
                                },
                            }
                        ],
                    }
                ],
            },
            "response": None,
        },
    ]
    (tmp_path / "anthropic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, cleaning = import_([tmp_path / "anthropic.jsonl"])
    assert cleaning.formats == {"anthropic": 5} and len(items) == 3
    assert cleaning.set_aside == {
        "failed in production (an error status, no answer)": 1,
        "multimodal (image)": 1,
    }
    assert items[0]["messages"][0] == {"role": "system", "content": "Be terse."}
    assert items[1]["tools"][0]["function"]["parameters"]["required"] == ["location"]
    assert (
        items[1]["logged_output"]
        == 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}</tool_call>'
    )
    assert [m["role"] for m in items[2]["messages"]] == ["user", "assistant", "tool"]
    assert items[2]["messages"][2]["tool_call_id"] == "toolu_01"
    check_items(items, tmp_path)


def test_openai_responses_api_bodies_and_batch_lines(tmp_path: Path) -> None:
    fn = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
    rows: list[dict[str, Any]] = [
        {
            "request": {
                "model": "gpt-4.1",
                "instructions": "Be brief.",
                "input": "Tell me a three sentence bedtime story about a unicorn.",
            },
            "response": {
                "id": "resp_1",
                "object": "response",
                "created_at": 1741476542,
                "status": "completed",
                "output": [
                    {
                        "type": "message",
                        "id": "msg_1",
                        "role": "assistant",
                        "content": [
                            {
                                "type": "output_text",
                                "text": "Once upon a time...",
                                "annotations": [],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "request": {
                "model": "gpt-4.1",
                "tools": [fn],
                "input": [{"role": "user", "content": "What is the weather like in Paris today?"}],
            },
            "response": {
                "id": "resp_2",
                "object": "response",
                "status": "completed",
                "output": [
                    {
                        "type": "function_call",
                        "id": "fc_1",
                        "call_id": "call_1",
                        "name": "get_weather",
                        "arguments": '{"location":"Paris, France"}',
                    }
                ],
            },
        },
        {
            "request": {
                "model": "gpt-4.1",
                "tools": [fn],
                "input": [
                    {"role": "user", "content": "What is the weather like in Paris today?"},
                    {
                        "type": "function_call",
                        "call_id": "call_1",
                        "name": "get_weather",
                        "arguments": '{"location":"Paris, France"}',
                    },
                    {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 14}'},
                ],
            },
            "response": {
                "id": "resp_3",
                "object": "response",
                "status": "completed",
                "output": [
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "14 degrees in Paris."}],
                    }
                ],
            },
        },
        {
            "request": {
                "model": "gpt-4.1",
                "input": "Jane, 54, as JSON",
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "person",
                        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                    }
                },
            },
            "response": {
                "id": "resp_4",
                "object": "response",
                "status": "completed",
                "output": [
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": '{"name": "Jane"}'}],
                    }
                ],
            },
        },
        {
            "request": {
                "model": "gpt-4.1",
                "tools": [{"type": "web_search_preview"}],
                "input": "news today",
            },
            "response": {"id": "resp_5", "object": "response", "status": "completed", "output": []},
        },
        {
            "request": {"model": "gpt-4.1", "input": "x"},
            "response": {
                "id": "resp_6",
                "object": "response",
                "status": "failed",
                "error": {"code": "server_error"},
                "output": [],
            },
        },
    ]
    (tmp_path / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, cleaning = import_([tmp_path / "responses.jsonl"])
    assert cleaning.formats == {"openai-responses": 6} and len(items) == 4
    assert cleaning.set_aside == {
        "a built-in tool (web_search_preview)": 1,
        "failed in production (an error status, no answer)": 1,
    }
    assert items[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."},
    ]
    assert (
        items[1]["logged_output"]
        == '<tool_call>{"name": "get_weather", "arguments": {"location": "Paris, France"}}</tool_call>'
    )
    assert items[2]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert items[3]["response_format"]["json_schema"]["name"] == "person"
    check_items(items, tmp_path)
    # the Batch API with /v1/responses lines, input and output files given together
    batch_in = [
        {"custom_id": f"r{k}", "method": "POST", "url": "/v1/responses", "body": rows[k]["request"]}
        for k in range(4)
    ]
    batch_out = [
        {
            "id": f"b{k}",
            "custom_id": f"r{k}",
            "response": {"status_code": 200, "body": rows[k]["response"]},
            "error": None,
        }
        for k in range(4)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in batch_in))
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in batch_out))
    batched, cleaning = import_([tmp_path / "in.jsonl", tmp_path / "out.jsonl"])
    assert cleaning.formats == {"openai-batch": 8}
    assert [i["logged_output"] for i in batched] == [i["logged_output"] for i in items]


def test_vllm_request_logging_text_lines(tmp_path: Path) -> None:
    prompt = "<|im_start|>user\nWhat's 2+2? It's easy.<|im_end|>\n<|im_start|>assistant\n"
    lines = [
        "INFO 11-24 10:00:00 [api_server.py:1090] Starting vLLM API server 0 on http://0.0.0.0:8000",
        f"INFO 11-24 10:00:01 [logger.py:43] Received request chatcmpl-a1: prompt: {prompt!r}, params: SamplingParams(n=1, presence_penalty=0.0, temperature=0.0, top_p=1.0, max_tokens=64, guided_decoding=None), prompt_token_ids: [1, 2, 3], prompt_embeds shape: None, lora_request: None.",
        "INFO 11-24 10:00:01 [async_llm.py:270] Added request chatcmpl-a1.",
        "INFO 11-24 10:00:02 [logger.py:71] Generated response chatcmpl-a1: output: '4, as \"2+2\" is 4.', output_token_ids: [19, 28], finish_reason: stop",
        "INFO 11-24 10:00:03 [logger.py:43] Received request cmpl-b2: prompt: 'Once upon a time', params: SamplingParams(n=1, temperature=0.0, max_tokens=16), prompt_token_ids: [7, 8], prompt_embeds shape: None, lora_request: None.",
        "INFO 11-24 10:00:03 [logger.py:71] Generated response cmpl-b2 (streaming delta): output: ' there', output_token_ids: [9], finish_reason: None",
        "INFO 11-24 10:00:04 [logger.py:71] Generated response cmpl-b2 (streaming complete): output: ' there was a fox', output_token_ids: [9, 10, 11, 12], finish_reason: stop",
        "INFO 11-24 10:00:10 [loggers.py:123] Engine 000: Avg prompt throughput: 2.0 tokens/s, Avg generation throughput: 0.6 tokens/s",
    ]
    (tmp_path / "vllm.log").write_text("\n".join(lines) + "\n")
    items, cleaning = import_([tmp_path / "vllm.log"])
    # a streamed piece holds no request: its "streaming complete" line holds the whole answer
    assert cleaning.formats == {"vllm": 4} and cleaning.noise == 4 and cleaning.bad == []
    assert [(i["prompt"], i["logged_output"], i["max_new_tokens"]) for i in items] == [
        (prompt, '4, as "2+2" is 4.', 64),
        ("Once upon a time", " there was a fox", 16),
    ]


def test_a_line_no_format_reads_is_named_with_every_format_tried(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "ok"}]}\nnot json at all\n'
    )
    with pytest.raises(Exception, match="1 of 2 lines cannot be read"):
        import_([tmp_path / "x.jsonl"], max_bad_share=0.1)


def test_personal_data_is_scrubbed_in_every_format_calls_and_tool_turns_included(
    tmp_path: Path,
) -> None:
    """An email, a phone number and a key planted in a request's text, in a call's arguments,
    in a tool's result and in the served answer, in each format: none is written."""
    planted = ["ada.l@example.org", "+44 20 7946 0958", "sk-proj-Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl"]
    email, phone, key = planted
    asked = f"Mail {email} the report; call {phone}."
    r = Logged(
        99,
        [
            {"role": "user", "content": asked},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": json.dumps({"to": email})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": f"sent with key {key}"},
        ],
        tools=[WEATHER],
        calls=[("send", {"to": email, "phone": phone})],
        tags={"feature": "agent"},
    )
    write_openai([r], tmp_path / "openai.jsonl", stream_every=1)
    write_litellm([r], tmp_path / "litellm.jsonl")
    write_langfuse([r], tmp_path / "langfuse.jsonl")
    anthropic = {
        "request": {
            "model": "claude",
            "max_tokens": 9,
            "system": f"Key: {key}",
            "messages": [{"role": "user", "content": asked}],
        },
        "response": {
            "id": "msg_9",
            "type": "message",
            "content": [{"type": "tool_use", "id": "t", "name": "send", "input": {"to": email}}],
        },
    }
    responses = {
        "request": {
            "model": "gpt-4.1",
            "input": [
                {"role": "user", "content": asked},
                {"type": "function_call_output", "call_id": "c", "output": phone},
            ],
        },
        "response": {
            "id": "resp_9",
            "object": "response",
            "status": "completed",
            "output": [
                {
                    "type": "function_call",
                    "name": "send",
                    "arguments": json.dumps({"to": email}),
                    "call_id": "c",
                }
            ],
        },
    }
    (tmp_path / "anthropic.jsonl").write_text(json.dumps(anthropic) + "\n")
    (tmp_path / "responses.jsonl").write_text(json.dumps(responses) + "\n")
    vllm = f"INFO 11-24 10:00:01 [logger.py:43] Received request r9: prompt: {asked!r}, params: SamplingParams(max_tokens=9), prompt_token_ids: [1]\nINFO 11-24 10:00:02 [logger.py:71] Generated response r9: output: {('Done, ' + key)!r}, output_token_ids: [2], finish_reason: stop\n"
    (tmp_path / "vllm.log").write_text(vllm)
    paths = [*sorted(tmp_path.glob("*.json*")), tmp_path / "vllm.log"]
    items, cleaning = import_(paths, max_bad_share=0.5)
    assert set(cleaning.formats) == {
        "openai",
        "litellm",
        "langfuse",
        "anthropic",
        "openai-responses",
        "vllm",
    }
    written = json.dumps(items, ensure_ascii=False)
    for value in planted:
        assert value not in written, value
    assert "<EMAIL>" in written and "<PHONE>" in written


def test_langfuse_blob_storage_export_lines(tmp_path: Path) -> None:
    """The blob-storage export's snake_case fields, JSON written as text, UTC times without
    an offset (its field reference)."""
    rows = [
        {
            "id": "obs-1",
            "trace_id": "tr-1",
            "type": "GENERATION",
            "start_time": "2024-05-29 13:46:19.963000",
            "model": "gpt-4o-mini",
            "model_parameters": json.dumps({"max_tokens": 40}),
            "input": json.dumps([{"role": "user", "content": "Name a prime."}]),
            "output": json.dumps({"role": "assistant", "content": "7"}),
            "level": "DEFAULT",
            "metadata": {"feature": "quiz"},
        },
        {"id": "obs-2", "trace_id": "tr-1", "type": "EVENT", "input": "{}", "output": None},
    ]
    (tmp_path / "observations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, cleaning = import_([tmp_path / "observations.jsonl"])
    assert cleaning.formats == {"langfuse": 2} and cleaning.set_aside == {
        "not a generation (a Langfuse EVENT)": 1
    }
    assert items == [
        {
            "id": items[0]["id"],
            "messages": [{"role": "user", "content": "Name a prime."}],
            "scorer": "agreement",
            "tags": ["model=gpt-4o-mini", "feature=quiz"],
            "max_new_tokens": 40,
            "logged_output": "7",
        }
    ]
