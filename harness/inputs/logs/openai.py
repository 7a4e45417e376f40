"""OpenAI's logs: chat-completions (and completions) pairs as a client or proxy writes them,
the Batch API's input and output files, and Responses API bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.inputs.logs.common import (
    FAILED,
    ROLES,
    Answer,
    BadLine,
    Request,
    SetAside,
    Turn,
    arguments_json,
    as_dict,
    as_object,
    completion_text,
    content_text,
    declared_of,
    max_tokens_of,
    messages_of,
    model_tag,
    prompt_request_of,
    request_of,
    response_format_of,
    served_text,
    sighting,
    tags_of,
    tools_of,
)


def read_openai(line: Mapping[str, Any]) -> Request:
    request = as_object(line["request"], "request")
    response = line.get("response")
    answer = completion_text(response, "response")
    tags = [
        *model_tag(request.get("model")),
        *tags_of(request.get("metadata"), line.get("metadata")),
    ]
    seen = sighting(response, line.get("timestamp", as_dict(response).get("created")))
    if isinstance(request.get("prompt"), str):  # the completions API
        return prompt_request_of(request["prompt"], answer, tags, max_tokens_of(request), **seen)
    msgs = messages_of(request.get("messages"), "request.messages")
    return request_of(
        msgs, answer, tags, max_tokens_of(request), **seen, **declared_of(request, "request")
    )


def read_openai_batch(line: Mapping[str, Any]) -> Request | Answer:
    join = line.get("custom_id")
    if not isinstance(join, str) or not join:
        raise BadLine("custom_id", "missing or not a string")
    if "body" in line:  # an input line: the request
        body = as_object(line["body"], "body")
        tags = [*model_tag(body.get("model")), *tags_of(body.get("metadata"))]
        if "input" in body and "messages" not in body:  # a /v1/responses request
            return _responses_request(body, None, tags, join=join)
        if isinstance(body.get("prompt"), str):
            return prompt_request_of(body["prompt"], None, tags, max_tokens_of(body), join=join)
        msgs = messages_of(body.get("messages"), "body.messages")
        return request_of(msgs, None, tags, max_tokens_of(body), join, **declared_of(body, "body"))
    response = line.get("response")
    if line.get("error") or response is None:
        return Answer(join=join, logged_output=None, failed=True)
    response = as_object(response, "response")
    status = response.get("status_code", 200)
    if status != 200:
        return Answer(join=join, logged_output=None, failed=True)
    body = as_object(response.get("body"), "response.body")
    try:
        if body.get("object") == "response":
            return Answer(join=join, logged_output=responses_text(body, "response.body"))
        return Answer(join=join, logged_output=completion_text(body, "response.body"))
    except SetAside:
        return Answer(join=join, logged_output=None, failed=True)


def _responses_turns(value: Any, field: str) -> list[Turn]:
    if isinstance(value, str):
        return [Turn("user", value)]
    if not isinstance(value, list) or not value:
        raise BadLine(field, "expected a string or a non-empty list of items")
    out: list[Turn] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise BadLine(where, "an item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise BadLine(f"{where}.role", f"unknown role {json.dumps(role)}")
            out.append(Turn(ROLES[role], content_text(item.get("content"), f"{where}.content")))
        elif kind == "function_call":
            call = (
                str(item.get("name")),
                arguments_json(item.get("arguments", "{}"), f"{where}.arguments"),
            )
            if out and out[-1].role == "assistant":  # calls of one turn, item by item
                last = out.pop()
                out.append(Turn("assistant", last.content, (*last.calls, call)))
            else:
                out.append(Turn("assistant", "", (call,)))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            out.append(Turn("tool", text, call_id=item.get("call_id")))
        elif kind == "reasoning":
            continue
        else:
            raise SetAside(f"a built-in tool ({kind})")
    return out


def responses_text(value: Any, field: str) -> str | None:
    """The answer in a Responses API object (`output` items: messages and function calls)."""
    if value is None:
        return None
    body = as_object(value, field)
    if body.get("error") or body.get("status") in ("failed", "cancelled"):
        raise SetAside(FAILED)
    turns = _responses_turns(
        body.get("output") or [{"type": "message", "role": "assistant", "content": ""}],
        f"{field}.output",
    )
    text = "\n".join(t.content for t in turns if t.content)
    calls = tuple(c for t in turns for c in t.calls)
    return served_text(text, calls)


def _responses_request(
    request: Mapping[str, Any], answer: str | None, tags: list[str], **more: Any
) -> Request:
    msgs: list[Turn] = []
    if isinstance(request.get("instructions"), str) and request["instructions"]:
        msgs.append(Turn("system", request["instructions"]))
    msgs += _responses_turns(request.get("input"), "request.input")
    fmt = as_dict(request.get("text")).get("format")
    return request_of(
        msgs,
        answer,
        tags,
        max_tokens_of(request),
        tools=tools_of(request, "request.tools"),
        response_format=response_format_of(fmt),
        **more,
    )


def read_responses(line: Mapping[str, Any]) -> Request:
    request = as_object(line["request"], "request")
    response = line.get("response")
    answer = responses_text(response, "response")
    tags = [
        *model_tag(request.get("model")),
        *tags_of(request.get("metadata"), line.get("metadata")),
    ]
    seen = sighting(response, line.get("timestamp", as_dict(response).get("created_at")))
    return _responses_request(request, answer, tags, **seen)


def is_responses(o: Mapping[str, Any]) -> bool:
    request, response = o.get("request"), o.get("response")
    if isinstance(response, dict) and response.get("object") == "response":
        return True
    return isinstance(request, dict) and "input" in request and "messages" not in request
