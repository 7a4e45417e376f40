"""Request logs read into one shape (`Request`), whatever tool wrote them. Each format is an
entry of `TRAFFIC_FORMATS` (the registry shape of every extension point: a plug-in adds one
through the `harness.traffic_formats` entry point) that says whether a JSON line is its kind
and reads it. docs/traffic.md lists each format field by field.

A line that cannot be read raises `BadLine` naming the field; a request the harness does not
evaluate (images or audio, a provider's built-in tool) or that failed in production raises
`SetAside` with the reason. Neither is dropped silently: the importer counts and names them.
Tool declarations, tool turns, logged calls and structured-output requests are kept
(`Turn.calls`, `Request.tools`, `Request.response_format`): a logged answer that calls tools is
written as the Hermes text the harness's parser reads back (`<tool_call>{...}</tool_call>`).
A format may also read plain-text log lines (`TrafficFormat.text`: vLLM's request logging);
a text line no format claims is noise of that log, counted and skipped.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.records.errors import HarnessError
from harness.records.registry import Registry

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
# Keys of metadata that identify a person, a session or a credential: never made into tags,
# by pattern (case and separators ignored), since every vendor spells them its own way
# (`user_id`, `userId`, `customerId`, `sessionId`, `api_token`, `authorization`...): a key
# that ends in "id", or holds any of these words, or names an IP address.
NOT_TAG_WORDS = (
    "user",
    "session",
    "token",
    "key",
    "secret",
    "auth",
    "passw",
    "credential",
    "cookie",
    "email",
    "mail",
    "phone",
    "address",
    "account",
    "customer",
    "owner",
)
NOT_TAG_IP = re.compile(r"(?:^|_)ip(?:_|$)|ip_?addr")


def private_key(key: str) -> bool:
    """A metadata key that identifies a person, a session or a credential."""
    flat = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower().replace("-", "_")
    bare = flat.replace("_", "")
    return (
        bare.endswith("id")
        or any(w in bare for w in NOT_TAG_WORDS)
        or bool(NOT_TAG_IP.search(flat))
    )


MAX_TAG = 80


class BadLine(HarnessError):
    """A line that is not what its format says: `field` names where."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


class SetAside(HarnessError):
    """A request read whole but not evaluated here; the message is the reason counted."""


# A request production did not answer (an error status or body): set aside, so that no eval
# set (nor a replay of it) holds a request whose served answer is unknown.
FAILED = "failed in production (an error status, no answer)"


def canonical(value: Any) -> str:
    """JSON text two equal values share (keys sorted, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of a logged conversation: an assistant's `calls` as (name, arguments as
    canonical JSON text), a tool turn's `call_id` (the call it answers)."""

    role: str
    content: str
    calls: tuple[tuple[str, str], ...] = ()
    call_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    messages: tuple[Turn, ...] = ()  # ending with the turn the model answers
    prompt: str | None = None  # a text-completion request: its prompt, served raw
    tools: str | None = None  # the declared tools, OpenAI's shape, as canonical JSON text
    response_format: str | None = None  # OpenAI's shape, as canonical JSON text
    logged_output: str | None = None  # what was served, when the log has it
    tags: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # the request's own max_tokens
    join: str | None = (
        None  # a batch request's custom_id (or a log's request id), to meet its answer
    )
    # Where and when it was seen, to count one request logged by several tools once: the
    # provider's response id (`chatcmpl-...`, `msg_...`, `resp_...`), seconds since the epoch
    request_id: str | None = None
    time: float | None = None
    log: str = ""  # the file it was read from (set by the importer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A line that holds only an answer: a batch output line, a vLLM "Generated response" line;
    it meets its request by `join`."""

    join: str
    logged_output: str | None
    failed: bool = False  # an error status: its request is set aside (FAILED)


@dataclass(frozen=True, slots=True)
class TrafficFormat:
    name: str
    doc: str  # one line for the docs and --help
    detect: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any]], Request | Answer]
    # A plain-text log line (not JSON) -> a request, an answer, or None: not one of its lines
    text: Callable[[str], Request | Answer | None] | None = None


# --- pieces every format shares -----------------------------------------------------------


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if isinstance(value, str):  # some tools store bodies as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadLine(field, f"a JSON string that is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise BadLine(field, f"expected an object, got {type(value).__name__}")
    return value


TEXT_PARTS = ("text", "input_text", "output_text")


def _text(content: Any, field: str) -> str:
    """A message's content: a string, or a list of parts of which only text is kept; an
    image, audio or file part sets the request aside."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise BadLine(field, f"expected a string or a list of parts, got {type(content).__name__}")
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadLine(f"{field}[{i}]", "a part must be an object with a type")
        if part["type"] in TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise BadLine(f"{field}[{i}].text", "missing or not a string")
            texts.append(part["text"])
        else:
            raise SetAside(f"multimodal ({part['type']})")
    return "\n".join(texts)


def _arguments(value: Any, field: str) -> str:
    """A call's arguments (an object, or its JSON text as OpenAI sends it), canonical."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise BadLine(field, "arguments that are not JSON") from None
    if not isinstance(value, dict):
        raise BadLine(field, "arguments must be an object")
    return canonical(value)


def _calls(value: Any, field: str) -> tuple[tuple[str, str], ...]:
    """OpenAI's `tool_calls` [{id, type, function: {name, arguments}}] (or a legacy
    `function_call` object) as (name, arguments)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for i, call in enumerate(items):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadLine(f"{field}[{i}]", "a call must name its function")
        out.append((fn["name"], _arguments(fn.get("arguments", {}), f"{field}[{i}].arguments")))
    return tuple(out)


def served_text(content: str, calls: tuple[tuple[str, str], ...]) -> str:
    """An answer as the harness reads outputs: its text, then each call in the Hermes form
    (`harness.analysis.toolcalls` parses it back; a replay serves it)."""
    written = [
        "<tool_call>"
        + json.dumps({"name": name, "arguments": json.loads(args)}, ensure_ascii=False)
        + "</tool_call>"
        for name, args in calls
    ]
    return "\n".join([content, *written] if content else written)


def messages_of(value: Any, field: str = "messages") -> list[Turn]:
    if not isinstance(value, list) or not value:
        raise BadLine(field, "expected a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise BadLine(where, "a message must be an object")
        role = msg.get("role")
        if role not in ROLES:
            raise BadLine(f"{where}.role", f"unknown role {json.dumps(role)}")
        calls: tuple[tuple[str, str], ...] = ()
        if msg.get("tool_calls") or msg.get("function_call"):
            key = "tool_calls" if msg.get("tool_calls") else "function_call"
            calls = _calls(msg[key], f"{where}.{key}")
        call_id = msg.get("tool_call_id") if ROLES[role] == "tool" else None
        content = _text(msg.get("content"), f"{where}.content")
        out.append(Turn(ROLES[role], content, calls, call_id if isinstance(call_id, str) else None))
    return out


def _request(
    msgs: list[Turn],
    answer: str | None,
    tags: list[str],
    max_tokens: Any = None,
    join: str | None = None,
    **more: Any,
) -> Request:
    """The conversation up to the turn the model answers; a final assistant turn (a log of a
    whole exchange) is the answer that was served."""
    if msgs and msgs[-1].role == "assistant":
        last = msgs.pop()
        served = served_text(last.content, last.calls)
        answer = served if answer is None else answer
    if not msgs:
        raise BadLine("messages", "the conversation holds only the answer")
    if msgs[-1].role == "assistant" or not (msgs[-1].content.strip() or msgs[-1].calls):
        raise BadLine("messages", "the turn the model answers is empty")
    tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    return Request(
        messages=tuple(msgs),
        logged_output=answer,
        tags=tuple(dict.fromkeys(tags)),
        max_new_tokens=tokens,
        join=join,
        **more,
    )


def _prompt_request(
    prompt: str, answer: str | None, tags: list[str], max_tokens: Any, **more: Any
) -> Request:
    """A text-completion request: its prompt is served raw (no chat template)."""
    if not prompt.strip():
        raise BadLine("prompt", "empty")
    tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    return Request(
        prompt=prompt,
        logged_output=answer,
        tags=tuple(dict.fromkeys(tags)),
        max_new_tokens=tokens,
        **more,
    )


def _chunks(value: Any) -> list[Any] | None:
    """A streamed answer as its chunks: a list of chunk objects, or the SSE text
    (`data: {...}` lines, `data: [DONE]`); None when it is not one."""
    if isinstance(value, str) and value.lstrip().startswith("data:"):
        chunks = []
        for line in value.splitlines():
            data = line.removeprefix("data:").strip()
            if line.startswith("data:") and data and data != "[DONE]":
                try:
                    chunks.append(json.loads(data))
                except json.JSONDecodeError:
                    raise BadLine("response", "a streamed chunk that is not JSON") from None
        return chunks
    if isinstance(value, list) and value and all(isinstance(c, dict) for c in value):
        return value
    return None


def _reassembled(chunks: list[Any], field: str) -> str:
    """The answer streamed chunk by chunk (`chat.completion.chunk`): the content deltas
    joined, each tool call's name and argument pieces joined by its index."""
    text: list[str] = []
    calls: dict[int, list[str]] = {}
    for n, chunk in enumerate(chunks):
        if chunk.get("error"):
            raise SetAside(FAILED)
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise BadLine(f"{field}[{n}].choices", "expected a list")
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                slot = calls.setdefault(int(call.get("index", 0)), ["", ""])
                slot[0] += fn.get("name") or ""
                slot[1] += fn.get("arguments") or ""
    done = tuple(
        (name, _arguments(args, f"{field}.tool_calls[{i}].arguments"))
        for i, (name, args) in sorted(calls.items())
    )
    return served_text("".join(text), done)


def completion_text(value: Any, field: str) -> str | None:
    """The answer in an OpenAI chat.completion object, a completions-API one, or a streamed
    chunk list (None: no answer logged). An error sets the request aside (FAILED)."""
    if value is None:
        return None
    if (chunks := _chunks(value)) is not None:
        return _reassembled(chunks, field)
    if isinstance(value, str):
        return value
    body = _object(value, field)
    if "error" in body and "choices" not in body:
        raise SetAside(FAILED)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadLine(f"{field}.choices", "missing or empty")
    first = choices[0]
    if not isinstance(first, dict):
        raise BadLine(f"{field}.choices[0]", "expected an object")
    message = first.get("message")
    if isinstance(message, dict):
        key = "tool_calls" if message.get("tool_calls") else "function_call"
        calls = (
            _calls(message[key], f"{field}.choices[0].message.{key}") if message.get(key) else ()
        )
        content = _text(message.get("content"), f"{field}.choices[0].message.content")
        return served_text(content, calls)
    if isinstance(first.get("text"), str):  # a completions-API answer
        return str(first["text"])
    raise BadLine(f"{field}.choices[0].message", "missing")


def tags_of(*sources: Any) -> list[str]:
    """`key=value` tags from metadata objects, a list's strings as they are (`key:value`
    written `key=value`, as metadata gives it). Identifiers of people, sessions and
    credentials (`private_key`, also for a list's `key=value` strings) are left out; so are
    long or nested values."""
    out = []
    for source in sources:
        if isinstance(source, dict):
            for key, value in source.items():
                if private_key(str(key)) or isinstance(value, dict | list) or value is None:
                    continue
                tag = f"{key}={value}"
                if len(tag) <= MAX_TAG:
                    out.append(tag)
        elif isinstance(source, list):
            for s in source:
                if not isinstance(s, str) or not 0 < len(s) <= MAX_TAG:
                    continue
                key, sep, value = s.partition("=") if "=" in s else s.partition(":")
                if sep and private_key(key):
                    continue
                out.append(f"{key}={value}" if sep and re.fullmatch(r"[\w.-]+", key) else s)
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model(value: Any) -> list[str]:
    return [f"model={value}"] if isinstance(value, str) and value else []


def _tools(request: Mapping[str, Any], field: str) -> str | None:
    """The declared tools in OpenAI's shape (`functions`, the legacy list, taken too); a
    provider's built-in tool (web search, code interpreter) sets the request aside."""
    tools = request.get("tools")
    if not tools and request.get("functions"):
        tools = [{"type": "function", "function": f} for f in request["functions"]]
    if not tools:
        return None
    if not isinstance(tools, list):
        raise BadLine(field, "expected a list of tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadLine(f"{field}[{i}]", "a tool must be an object")
        if tool.get("type", "function") != "function":
            raise SetAside(f"a built-in tool ({tool.get('type')})")
        fn = tool.get("function", tool)  # the Responses API writes the function flat
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadLine(f"{field}[{i}]", "a function tool must have a name")
        spec = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            spec["description"] = fn["description"]
        params = fn.get("parameters", fn.get("input_schema"))  # Anthropic: input_schema
        if isinstance(params, dict):
            spec["parameters"] = params
        out.append({"type": "function", "function": spec})
    return canonical(out)


def _response_format(value: Any) -> str | None:
    """A structured-output request: OpenAI's `response_format`, or the Responses API's
    `text.format`, in OpenAI's chat shape; plain text is none."""
    if not isinstance(value, dict) or value.get("type") in (None, "text"):
        return None
    if value["type"] == "json_object":
        return canonical({"type": "json_object"})
    if value["type"] == "json_schema":
        spec = value.get("json_schema", value)  # the Responses API writes it flat
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadLine("response_format", "a json_schema format without a schema")
        named = {"name": spec["name"]} if isinstance(spec.get("name"), str) else {}
        return canonical({"type": "json_schema", "json_schema": named | {"schema": spec["schema"]}})
    raise BadLine("response_format", f"unknown type {json.dumps(value['type'])}")


def _declared(request: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The tools and structured-output request a chat-completions body declares."""
    return {
        "tools": _tools(request, f"{field}.tools"),
        "response_format": _response_format(request.get("response_format")),
    }


def _max_tokens(request: Mapping[str, Any]) -> Any:
    return request.get(
        "max_completion_tokens", request.get("max_tokens", request.get("max_output_tokens"))
    )


def when(value: Any) -> float | None:
    """A timestamp as seconds since the epoch: a number (seconds, or milliseconds past
    1e12) or ISO 8601 text; None when there is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / (1000 if value > 1e12 else 1)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:  # exports without an offset write UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _response_id(value: Any) -> str | None:
    """The provider's id of a response object (shared by every tool that logged it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, list) and value and isinstance(value[0], dict):  # streamed chunks
        value = value[0]
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) and found else None


# --- the formats ------------------------------------------------------------------------


def _read_openai(line: Mapping[str, Any]) -> Request:
    request = _object(line["request"], "request")
    response = line.get("response")
    answer = completion_text(response, "response")
    tags = [*_model(request.get("model")), *tags_of(request.get("metadata"), line.get("metadata"))]
    seen: dict[str, Any] = {
        "request_id": _response_id(response),
        "time": when(line.get("timestamp", _dict(response).get("created"))),
    }
    if isinstance(request.get("prompt"), str):  # the completions API
        return _prompt_request(request["prompt"], answer, tags, _max_tokens(request), **seen)
    msgs = messages_of(request.get("messages"), "request.messages")
    return _request(
        msgs, answer, tags, _max_tokens(request), **seen, **_declared(request, "request")
    )


def _read_openai_batch(line: Mapping[str, Any]) -> Request | Answer:
    join = line.get("custom_id")
    if not isinstance(join, str) or not join:
        raise BadLine("custom_id", "missing or not a string")
    if "body" in line:  # an input line: the request
        body = _object(line["body"], "body")
        tags = [*_model(body.get("model")), *tags_of(body.get("metadata"))]
        if "input" in body and "messages" not in body:  # a /v1/responses request
            return _responses_request(body, None, tags, join=join)
        if isinstance(body.get("prompt"), str):
            return _prompt_request(body["prompt"], None, tags, _max_tokens(body), join=join)
        msgs = messages_of(body.get("messages"), "body.messages")
        return _request(msgs, None, tags, _max_tokens(body), join, **_declared(body, "body"))
    response = line.get("response")
    if line.get("error") or response is None:
        return Answer(join=join, logged_output=None, failed=True)
    response = _object(response, "response")
    status = response.get("status_code", 200)
    if status != 200:
        return Answer(join=join, logged_output=None, failed=True)
    body = _object(response.get("body"), "response.body")
    try:
        if body.get("object") == "response":
            return Answer(join=join, logged_output=responses_text(body, "response.body"))
        return Answer(join=join, logged_output=completion_text(body, "response.body"))
    except SetAside:
        return Answer(join=join, logged_output=None, failed=True)


def _read_litellm(line: Mapping[str, Any]) -> Request:
    if line.get("status") == "failure":
        raise SetAside(FAILED)
    answer = completion_text(line.get("response"), "response")
    metadata = _dict(line.get("metadata"))
    # LiteLLM's metadata is about the key and its user (`user_api_key_*`): only what the
    # caller sent along (`requester_metadata`) and the spend tags are read
    tags = [
        *_model(line.get("model")),
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
    params = _dict(line.get("model_parameters"))
    seen: dict[str, Any] = {
        "request_id": _response_id(line.get("response")),
        "time": when(line.get("startTime")),
    }
    msgs = line.get("messages")
    if isinstance(msgs, str):  # a text-completion call logs its prompt as a string
        return _prompt_request(msgs, answer, tags, _max_tokens(params), **seen)
    return _request(
        messages_of(msgs, "messages"),
        answer,
        tags,
        _max_tokens(params),
        **seen,
        **_declared(params, "model_parameters"),
    )


def _read_helicone(line: Mapping[str, Any]) -> Request:
    request = _object(line["request_body"], "request_body")
    if line.get("response_status", 200) not in (200, None):
        raise SetAside(FAILED)
    response = line.get("response_body")
    answer = completion_text(response, "response_body")
    tags = [
        *_model(line.get("model") or request.get("model")),
        *tags_of(line.get("request_properties")),
    ]
    seen: dict[str, Any] = {
        "request_id": _response_id(response),
        "time": when(line.get("request_created_at")),
    }
    msgs = messages_of(request.get("messages"), "request_body.messages")
    return _request(
        msgs, answer, tags, _max_tokens(request), **seen, **_declared(request, "request_body")
    )


def _read_openpipe(line: Mapping[str, Any]) -> Request:
    request = _object(line["input"], "input")
    output = line.get("output")
    answer = None
    if isinstance(output, dict) and "choices" in output:
        answer = completion_text(output, "output")
    elif isinstance(output, dict) and output.get("role") == "assistant":  # a bare message
        calls = (
            _calls(output["tool_calls"], "output.tool_calls") if output.get("tool_calls") else ()
        )
        answer = served_text(_text(output.get("content"), "output.content"), calls)
    if line.get("statusCode", 200) not in (200, None) or line.get("errorMessage"):
        raise SetAside(FAILED)
    tags = [*_model(request.get("model")), *tags_of(line.get("tags"))]
    seen: dict[str, Any] = {"request_id": _response_id(output), "time": when(line.get("reqSentAt"))}
    msgs = messages_of(request.get("messages"), "input.messages")
    return _request(msgs, answer, tags, _max_tokens(request), **seen, **_declared(request, "input"))


def _read_messages(line: Mapping[str, Any]) -> Request:
    tags = tags_of(line.get("tags"), line.get("metadata"))
    return _request(
        messages_of(line["messages"]), None, tags, _max_tokens(line), **_declared(line, "$")
    )


# --- Langfuse ------------------------------------------------------------------------------


def _read_langfuse(line: Mapping[str, Any]) -> Request:
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
    params = _object(get("modelParameters") or {}, "modelParameters")
    tags = [*_model(get("model")), *tags_of(get("tags"), _dict(get("metadata")))]
    output = get("output")
    if isinstance(output, str) and output[:1] in "{[":  # the blob export writes JSON as text
        output = json.loads(output)
    answer: str | None
    if isinstance(output, dict) and "choices" in output:
        answer = completion_text(output, "output")
    elif isinstance(output, dict):
        calls = (
            _calls(output["tool_calls"], "output.tool_calls") if output.get("tool_calls") else ()
        )
        answer = served_text(_text(output.get("content"), "output.content"), calls)
    elif isinstance(output, str):
        answer = output
    else:
        answer = None
    seen: dict[str, Any] = {"request_id": _response_id(output), "time": when(get("startTime"))}
    given = get("input")
    if isinstance(given, str) and given[:1] in "{[":
        given = json.loads(given)
    if isinstance(given, str):
        return _prompt_request(given, answer, tags, _max_tokens(params), **seen)
    body = _dict(given) if isinstance(given, dict) else {"messages": given}
    declared = _declared(
        body | {k: v for k, v in params.items() if k in ("tools", "response_format")}, "input"
    )
    msgs = messages_of(body.get("messages"), "input")
    return _request(msgs, answer, tags, _max_tokens(params), **seen, **declared)


# --- Anthropic Messages ------------------------------------------------------------------


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
                        _arguments(block.get("input", {}), f"{where}.content[{j}].input"),
                    )
                )
            elif kind == "tool_result":
                result = block.get("content")
                text = (
                    result
                    if isinstance(result, str)
                    else _text(result, f"{where}.content[{j}].content")
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
    body = _object(value, "response")
    if body.get("type") == "error" or "error" in body:
        raise SetAside(FAILED)
    turns = _anthropic_turns([{"role": "assistant", "content": body.get("content")}], "response")
    return served_text(turns[0].content, turns[0].calls) if turns else ""


def _read_anthropic(line: Mapping[str, Any]) -> Request:
    request = _object(line["request"], "request")
    system = request.get("system")
    msgs: list[Turn] = []
    if system:
        text = system if isinstance(system, str) else _text(system, "request.system")
        msgs.append(Turn("system", text))
    msgs += _anthropic_turns(request.get("messages"), "request.messages")
    response = line.get("response")
    answer = _anthropic_answer(response)
    tags = [
        *_model(request.get("model")),
        *tags_of(_dict(request.get("metadata")), line.get("metadata")),
    ]
    seen: dict[str, Any] = {
        "request_id": _response_id(response),
        "time": when(line.get("timestamp")),
    }
    tools = _tools({"tools": request.get("tools")}, "request.tools")
    return _request(msgs, answer, tags, request.get("max_tokens"), tools=tools, **seen)


def _is_anthropic(o: Mapping[str, Any]) -> bool:
    request, response = o.get("request"), o.get("response")
    if not isinstance(request, dict) or "messages" not in request:
        return False
    if isinstance(response, dict) and response.get("type") in ("message", "error"):
        return True
    tools = request.get("tools") or []
    return "system" in request or any(isinstance(t, dict) and "input_schema" in t for t in tools)


# --- OpenAI Responses API ----------------------------------------------------------------


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
            out.append(Turn(ROLES[role], _text(item.get("content"), f"{where}.content")))
        elif kind == "function_call":
            call = (
                str(item.get("name")),
                _arguments(item.get("arguments", "{}"), f"{where}.arguments"),
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
    body = _object(value, field)
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
    fmt = _dict(request.get("text")).get("format")
    return _request(
        msgs,
        answer,
        tags,
        _max_tokens(request),
        tools=_tools(request, "request.tools"),
        response_format=_response_format(fmt),
        **more,
    )


def _read_responses(line: Mapping[str, Any]) -> Request:
    request = _object(line["request"], "request")
    response = line.get("response")
    answer = responses_text(response, "response")
    tags = [*_model(request.get("model")), *tags_of(request.get("metadata"), line.get("metadata"))]
    seen: dict[str, Any] = {
        "request_id": _response_id(response),
        "time": when(line.get("timestamp", _dict(response).get("created_at"))),
    }
    return _responses_request(request, answer, tags, **seen)


def _is_responses(o: Mapping[str, Any]) -> bool:
    request, response = o.get("request"), o.get("response")
    if isinstance(response, dict) and response.get("object") == "response":
        return True
    return isinstance(request, dict) and "input" in request and "messages" not in request


# --- vLLM's request logging (plain text) --------------------------------------------------

# `vllm serve --enable-log-requests --enable-log-outputs` (vllm/entrypoints/logger.py):
#   ... Received request ID: prompt: 'TEXT', params: SamplingParams(..., max_tokens=N, ...), ...
#   ... Generated response ID[ (streaming complete)]: output: 'TEXT', output_token_ids: ...
_QUOTED = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""  # a Python string literal
_VLLM_IN = re.compile(rf"Received request (\S+): prompt: {_QUOTED}, params: (.*)")
_VLLM_OUT = re.compile(
    rf"Generated response (\S+?)( \(streaming (?:complete|delta)\))?: output: {_QUOTED}"
)
_VLLM_MAX = re.compile(r"\bmax_tokens=(\d+)")
_VLLM_TIME = re.compile(r"^\w+ (\d\d-\d\d \d\d:\d\d:\d\d)")


def _vllm_text(line: str) -> Request | Answer | None:
    if (m := _VLLM_IN.search(line)) is not None:
        prompt = ast.literal_eval(m.group(2))  # Python's repr of the prompt: a literal
        tokens = _VLLM_MAX.search(m.group(3))
        return _prompt_request(
            prompt, None, ["engine=vllm"], int(tokens.group(1)) if tokens else None, join=m.group(1)
        )
    if (m := _VLLM_OUT.search(line)) is not None:
        if m.group(2) == " (streaming delta)":
            return None  # one piece of a stream: its "streaming complete" line holds it all
        return Answer(join=m.group(1), logged_output=ast.literal_eval(m.group(3)))
    return None


def _read_vllm_json(line: Mapping[str, Any]) -> Request | Answer:
    raise BadLine("$", "vLLM logs plain text lines, not JSON")


TRAFFIC_FORMATS: Registry[TrafficFormat] = Registry(
    "traffic format",
    "harness.traffic_formats",
    {
        "openai-batch": TrafficFormat(
            "openai-batch",
            "OpenAI batch API input {custom_id, body} and output {custom_id, response} lines "
            "(chat completions, completions and responses)",
            lambda o: "custom_id" in o and ("body" in o or "response" in o or "error" in o),
            _read_openai_batch,
        ),
        "anthropic": TrafficFormat(
            "anthropic",
            "Anthropic Messages API bodies: {request: {system?, messages, tools?}, response: "
            "{type: message, content: [blocks]}}",
            _is_anthropic,
            _read_anthropic,
        ),
        "openai-responses": TrafficFormat(
            "openai-responses",
            "OpenAI Responses API bodies: {request: {input, instructions?, tools?, text?}, "
            "response: {object: response, output: [items]}}",
            _is_responses,
            _read_responses,
        ),
        "openai": TrafficFormat(
            "openai",
            "OpenAI chat-completions (or completions) pairs: {request: {messages | prompt, "
            "...}, response: {choices} or its streamed chunks}",
            lambda o: isinstance(o.get("request"), dict | str),
            _read_openai,
        ),
        "langfuse": TrafficFormat(
            "langfuse",
            "Langfuse observations (generations export, JSONL or the UI's JSON array): "
            "{id, traceId, type: GENERATION, input, output, ...}",
            lambda o: ("traceId" in o or "trace_id" in o) and "input" in o,
            _read_langfuse,
        ),
        "litellm": TrafficFormat(
            "litellm",
            "LiteLLM's StandardLoggingPayload (messages, response, model, metadata, ...)",
            lambda o: "messages" in o and ("call_type" in o or "model_parameters" in o),
            _read_litellm,
        ),
        "helicone": TrafficFormat(
            "helicone",
            "Helicone's export (@helicone/export --include-body): request_body, response_body",
            lambda o: "request_body" in o,
            _read_helicone,
        ),
        "openpipe": TrafficFormat(
            "openpipe",
            "OpenPipe's request-log export: {input, output, tags}",
            lambda o: "input" in o and "output" in o and not ("traceId" in o or "trace_id" in o),
            _read_openpipe,
        ),
        "messages": TrafficFormat(
            "messages",
            'plain {"messages": [...]} lines (a final assistant turn is the answer served)',
            lambda o: "messages" in o,
            _read_messages,
        ),
        "vllm": TrafficFormat(
            "vllm",
            "vLLM's request logging, plain text (vllm serve --enable-log-requests "
            "--enable-log-outputs): Received request / Generated response lines",
            lambda o: False,
            _read_vllm_json,
            text=_vllm_text,
        ),
    },
    lambda x: isinstance(x, TrafficFormat),
    "a TrafficFormat",
)


def detect(line: Mapping[str, Any]) -> TrafficFormat | None:
    """The first format, built-ins in their order then plug-ins, that claims the line."""
    for name in TRAFFIC_FORMATS.names():
        fmt = TRAFFIC_FORMATS.get(name)
        if fmt.detect(line):
            return fmt
    return None


def read_text(
    line: str, forced: TrafficFormat | None
) -> tuple[TrafficFormat, Request | Answer] | None:
    """A plain-text log line read by the first text format that claims it (or `forced`'s);
    None: no format's line (the rest of a server's log)."""
    names = [forced.name] if forced is not None else TRAFFIC_FORMATS.names()
    for name in names:
        fmt = TRAFFIC_FORMATS.get(name)
        if fmt.text is not None and (got := fmt.text(line)) is not None:
            return fmt, got
    return None
