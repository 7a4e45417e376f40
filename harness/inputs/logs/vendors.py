"""The logs of LLM gateways and observability tools: LiteLLM, Helicone, OpenPipe, Langfuse,
Anthropic Messages bodies, and plain `{"messages": [...]}` lines."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from harness.inputs.logs.common import (
    FAILED,
    BadLine,
    Request,
    SetAside,
    Turn,
    arguments_json,
    as_dict,
    as_object,
    calls_of,
    completion_text,
    content_text,
    declared_of,
    max_tokens_of,
    messages_of,
    model_tag,
    prompt_request_of,
    request_of,
    served_text,
    sighting,
    tags_of,
    tools_of,
)


def read_litellm(line: Mapping[str, Any]) -> Request:
    if line.get("status") == "failure":
        raise SetAside(FAILED)
    answer = completion_text(line.get("response"), "response")
    metadata = as_dict(line.get("metadata"))
    # LiteLLM's metadata is about the key and its user (`user_api_key_*`): only what the
    # caller sent along (`requester_metadata`) and the spend tags are read
    tags = [
        *model_tag(line.get("model")),
        *(
            [f"model_group={line['model_group']}"]
            if isinstance(line.get("model_group"), str)
            else []
        ),
        *tags_of(
            line.get("request_tags"),
            metadata.get("requester_metadata"),
            metadata.get("spend_logs_metadata"),
        ),
    ]
    params = as_dict(line.get("model_parameters"))
    seen = sighting(line.get("response"), line.get("startTime"))
    msgs = line.get("messages")
    if isinstance(msgs, str):  # a text-completion call logs its prompt as a string
        return prompt_request_of(msgs, answer, tags, max_tokens_of(params), **seen)
    return request_of(
        messages_of(msgs, "messages"),
        answer,
        tags,
        max_tokens_of(params),
        **seen,
        **declared_of(params, "model_parameters"),
    )


def read_helicone(line: Mapping[str, Any]) -> Request:
    request = as_object(line["request_body"], "request_body")
    if line.get("response_status", 200) not in (200, None):
        raise SetAside(FAILED)
    response = line.get("response_body")
    answer = completion_text(response, "response_body")
    tags = [
        *model_tag(line.get("model") or request.get("model")),
        *tags_of(line.get("request_properties")),
    ]
    seen = sighting(response, line.get("request_created_at"))
    msgs = messages_of(request.get("messages"), "request_body.messages")
    return request_of(
        msgs, answer, tags, max_tokens_of(request), **seen, **declared_of(request, "request_body")
    )


def read_openpipe(line: Mapping[str, Any]) -> Request:
    request = as_object(line["input"], "input")
    output = line.get("output")
    answer = None
    if isinstance(output, dict) and "choices" in output:
        answer = completion_text(output, "output")
    elif isinstance(output, dict) and output.get("role") == "assistant":  # a bare message
        calls = (
            calls_of(output["tool_calls"], "output.tool_calls") if output.get("tool_calls") else ()
        )
        answer = served_text(content_text(output.get("content"), "output.content"), calls)
    if line.get("statusCode", 200) not in (200, None) or line.get("errorMessage"):
        raise SetAside(FAILED)
    tags = [*model_tag(request.get("model")), *tags_of(line.get("tags"))]
    seen = sighting(output, line.get("reqSentAt"))
    msgs = messages_of(request.get("messages"), "input.messages")
    return request_of(
        msgs, answer, tags, max_tokens_of(request), **seen, **declared_of(request, "input")
    )


def read_messages(line: Mapping[str, Any]) -> Request:
    tags = tags_of(line.get("tags"), line.get("metadata"))
    return request_of(
        messages_of(line["messages"]), None, tags, max_tokens_of(line), **declared_of(line, "$")
    )


def read_langfuse(line: Mapping[str, Any]) -> Request:
    """A Langfuse observation: the public API's and the UI's export (camelCase: `traceId`,
    `startTime`, `modelParameters`) or the blob-storage export (snake_case); a GENERATION's
    `input` (messages, {messages, tools}, or a prompt string) and `output`."""

    def get(camel: str) -> Any:
        snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", camel).lower()
        return line.get(camel, line.get(snake))

    kind = get("type")
    if kind not in (None, "GENERATION"):
        raise SetAside(f"not a generation (a Langfuse {kind})")
    if get("level") == "ERROR":
        raise SetAside(FAILED)
    params = as_object(get("modelParameters") or {}, "modelParameters")
    tags = [*model_tag(get("model")), *tags_of(get("tags"), as_dict(get("metadata")))]
    output = get("output")
    if isinstance(output, str) and output[:1] in "{[":  # the blob export writes JSON as text
        output = json.loads(output)
    answer: str | None
    if isinstance(output, dict) and "choices" in output:
        answer = completion_text(output, "output")
    elif isinstance(output, dict):
        calls = (
            calls_of(output["tool_calls"], "output.tool_calls") if output.get("tool_calls") else ()
        )
        answer = served_text(content_text(output.get("content"), "output.content"), calls)
    elif isinstance(output, str):
        answer = output
    else:
        answer = None
    seen = sighting(output, get("startTime"))
    given = get("input")
    if isinstance(given, str) and given[:1] in "{[":
        given = json.loads(given)
    if isinstance(given, str):
        return prompt_request_of(given, answer, tags, max_tokens_of(params), **seen)
    body = as_dict(given) if isinstance(given, dict) else {"messages": given}
    declared = declared_of(
        body | {k: v for k, v in params.items() if k in ("tools", "response_format")}, "input"
    )
    msgs = messages_of(body.get("messages"), "input")
    return request_of(msgs, answer, tags, max_tokens_of(params), **seen, **declared)


def _anthropic_turns(value: Any, field: str) -> list[Turn]:
    """Messages API turns: content a string or blocks; `tool_use` blocks are an assistant's
    calls, `tool_result` blocks the tool turns that answer them."""
    if not isinstance(value, list) or not value:
        raise BadLine(field, "expected a non-empty list of messages")
    out: list[Turn] = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise BadLine(f"{where}.role", "expected user or assistant")
        content = msg.get("content")
        if isinstance(content, str):
            out.append(Turn(msg["role"], content))
            continue
        if not isinstance(content, list):
            raise BadLine(f"{where}.content", "expected a string or a list of blocks")
        texts: list[str] = []
        calls: list[tuple[str, str]] = []
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use":
                calls.append(
                    (
                        str(block.get("name")),
                        arguments_json(block.get("input", {}), f"{where}.content[{j}].input"),
                    )
                )
            elif kind == "tool_result":
                result = block.get("content")
                text = (
                    result
                    if isinstance(result, str)
                    else content_text(result, f"{where}.content[{j}].content")
                )
                out.append(Turn("tool", text, call_id=block.get("tool_use_id")))
            elif kind in ("thinking", "redacted_thinking"):
                continue
            else:
                raise SetAside(f"multimodal ({kind})")
        if texts or calls:
            out.append(Turn(msg["role"], "\n".join(texts), tuple(calls)))
    return out


def _anthropic_answer(value: Any) -> str | None:
    if value is None:
        return None
    body = as_object(value, "response")
    if body.get("type") == "error" or "error" in body:
        raise SetAside(FAILED)
    turns = _anthropic_turns([{"role": "assistant", "content": body.get("content")}], "response")
    return served_text(turns[0].content, turns[0].calls) if turns else ""


def read_anthropic(line: Mapping[str, Any]) -> Request:
    request = as_object(line["request"], "request")
    system = request.get("system")
    msgs: list[Turn] = []
    if system:
        text = system if isinstance(system, str) else content_text(system, "request.system")
        msgs.append(Turn("system", text))
    msgs += _anthropic_turns(request.get("messages"), "request.messages")
    response = line.get("response")
    answer = _anthropic_answer(response)
    tags = [
        *model_tag(request.get("model")),
        *tags_of(as_dict(request.get("metadata")), line.get("metadata")),
    ]
    seen = sighting(response, line.get("timestamp"))
    tools = tools_of({"tools": request.get("tools")}, "request.tools")
    return request_of(msgs, answer, tags, request.get("max_tokens"), tools=tools, **seen)


def is_anthropic(o: Mapping[str, Any]) -> bool:
    request, response = o.get("request"), o.get("response")
    if not isinstance(request, dict) or "messages" not in request:
        return False
    if isinstance(response, dict) and response.get("type") in ("message", "error"):
        return True
    tools = request.get("tools") or []
    return "system" in request or any(isinstance(t, dict) and "input_schema" in t for t in tools)
