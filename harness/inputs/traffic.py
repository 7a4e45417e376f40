"""Request logs read into one shape (`Request`), whatever tool wrote them. Each format is an
entry of `TRAFFIC_FORMATS` (the registry shape of every extension point: a plug-in adds one
through the `harness.traffic_formats` entry point) that says whether a JSON line is its kind
and reads it. docs/traffic.md lists each format field by field.

A line that cannot be read raises `BadLine` naming the field; a request the harness does not
evaluate (tool calls, images or audio) raises `SetAside` with the reason. Neither is dropped
silently: the importer counts and names them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.records.errors import HarnessError
from harness.records.registry import Registry

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # (role, content), ending with the user's turn
    logged_output: str | None = None  # what was served, when the log has it
    tags: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # the request's own max_tokens
    join: str | None = None  # a batch request's custom_id, to meet its answer


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A batch API output line: the answer to the request of the same custom_id."""

    join: str
    logged_output: str | None
    failed: bool = False  # an error status: its request is set aside (FAILED)


@dataclass(frozen=True, slots=True)
class TrafficFormat:
    name: str
    doc: str  # one line for the docs and --help
    detect: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any]], Request | Answer]


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
        if part["type"] in ("text", "input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise BadLine(f"{field}[{i}].text", "missing or not a string")
            texts.append(part["text"])
        else:
            raise SetAside(f"multimodal ({part['type']})")
    return "\n".join(texts)


def messages_of(value: Any, field: str = "messages") -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadLine(field, "expected a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise BadLine(where, "a message must be an object")
        role = msg.get("role")
        if role in ("tool", "function") or msg.get("tool_calls") or msg.get("function_call"):
            raise SetAside("tool calls")
        if role not in ROLES:
            raise BadLine(f"{where}.role", f"unknown role {json.dumps(role)}")
        out.append((ROLES[role], _text(msg.get("content"), f"{where}.content")))
    return out


def _request(
    msgs: list[tuple[str, str]],
    answer: str | None,
    tags: list[str],
    max_tokens: Any = None,
    join: str | None = None,
) -> Request:
    """The conversation up to the user's last turn; a final assistant turn (a log of a whole
    exchange) is the answer that was served."""
    if msgs and msgs[-1][0] == "assistant":
        served = msgs.pop()[1]
        answer = served if answer is None else answer
    if not msgs or msgs[-1][0] != "user":
        raise BadLine("messages", "the conversation does not end with a user turn")
    if not msgs[-1][1].strip():
        raise BadLine("messages", "the last user turn is empty")
    tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    return Request(
        messages=tuple(msgs),
        logged_output=answer,
        tags=tuple(dict.fromkeys(tags)),
        max_new_tokens=tokens,
        join=join,
    )


def completion_text(value: Any, field: str) -> str | None:
    """The answer in an OpenAI chat.completion object (None: an error, no answer)."""
    if value is None:
        return None
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
        if message.get("tool_calls") or message.get("function_call"):
            raise SetAside("tool calls")
        return _text(message.get("content"), f"{field}.choices[0].message.content")
    if isinstance(first.get("text"), str):  # a completions-API answer
        return str(first["text"])
    raise BadLine(f"{field}.choices[0].message", "missing")


def tags_of(*sources: Any) -> list[str]:
    """`key=value` tags from metadata objects, a list's strings as they are. Identifiers of
    people, sessions and credentials (`private_key`, also for a list's `key=value` strings)
    are left out; so are long or nested values."""
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
            out += [
                s
                for s in source
                if isinstance(s, str)
                and 0 < len(s) <= MAX_TAG
                and not ("=" in s and private_key(s.partition("=")[0]))
                and not (":" in s and private_key(s.partition(":")[0]))
            ]
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model(value: Any) -> list[str]:
    return [f"model={value}"] if isinstance(value, str) and value else []


def _tools_declared(request: Mapping[str, Any]) -> None:
    if request.get("tools") or request.get("functions"):
        raise SetAside("tool calls")


def _max_tokens(request: Mapping[str, Any]) -> Any:
    return request.get("max_completion_tokens", request.get("max_tokens"))


# --- the formats ------------------------------------------------------------------------


def _read_openai(line: Mapping[str, Any]) -> Request:
    request = _object(line["request"], "request")
    _tools_declared(request)
    answer = completion_text(line.get("response"), "response")
    tags = [*_model(request.get("model")), *tags_of(request.get("metadata"), line.get("metadata"))]
    return _request(
        messages_of(request.get("messages"), "request.messages"), answer, tags, _max_tokens(request)
    )


def _read_openai_batch(line: Mapping[str, Any]) -> Request | Answer:
    join = line.get("custom_id")
    if not isinstance(join, str) or not join:
        raise BadLine("custom_id", "missing or not a string")
    if "body" in line:  # an input line: the request
        body = _object(line["body"], "body")
        _tools_declared(body)
        tags = [*_model(body.get("model")), *tags_of(body.get("metadata"))]
        msgs = messages_of(body.get("messages"), "body.messages")
        return _request(msgs, None, tags, _max_tokens(body), join)
    response = line.get("response")
    if line.get("error") or response is None:
        return Answer(join=join, logged_output=None, failed=True)
    response = _object(response, "response")
    status = response.get("status_code", 200)
    if status != 200:
        return Answer(join=join, logged_output=None, failed=True)
    try:
        return Answer(
            join=join, logged_output=completion_text(response.get("body"), "response.body")
        )
    except SetAside:
        return Answer(join=join, logged_output=None, failed=True)


def _read_litellm(line: Mapping[str, Any]) -> Request:
    msgs = line.get("messages")
    if isinstance(msgs, str):  # a text-completion call logs its prompt as a string
        msgs = [{"role": "user", "content": msgs}]
    if line.get("status") == "failure":
        raise SetAside(FAILED)
    answer = completion_text(line.get("response"), "response")
    # LiteLLM's metadata is about the key and its user (`user_api_key_*`): no tags from it
    tags = [
        *_model(line.get("model")),
        *(
            [f"model_group={line['model_group']}"]
            if isinstance(line.get("model_group"), str)
            else []
        ),
        *tags_of(line.get("request_tags")),
    ]
    params = _dict(line.get("model_parameters"))
    if params.get("tools") or params.get("functions"):
        raise SetAside("tool calls")
    return _request(messages_of(msgs, "messages"), answer, tags, _max_tokens(params))


def _read_helicone(line: Mapping[str, Any]) -> Request:
    request = _object(line["request_body"], "request_body")
    _tools_declared(request)
    if line.get("response_status", 200) not in (200, None):
        raise SetAside(FAILED)
    answer = completion_text(line.get("response_body"), "response_body")
    tags = [
        *_model(line.get("model") or request.get("model")),
        *tags_of(line.get("request_properties")),
    ]
    msgs = messages_of(request.get("messages"), "request_body.messages")
    return _request(msgs, answer, tags, _max_tokens(request))


def _read_openpipe(line: Mapping[str, Any]) -> Request:
    request = _object(line["input"], "input")
    _tools_declared(request)
    output = line.get("output")
    answer = None
    if isinstance(output, dict) and "choices" in output:
        answer = completion_text(output, "output")
    elif isinstance(output, dict) and output.get("role") == "assistant":  # a bare message
        if output.get("tool_calls"):
            raise SetAside("tool calls")
        answer = _text(output.get("content"), "output.content")
    tags = [*_model(request.get("model")), *tags_of(line.get("tags"))]
    msgs = messages_of(request.get("messages"), "input.messages")
    return _request(msgs, answer, tags, _max_tokens(request))


def _read_messages(line: Mapping[str, Any]) -> Request:
    if line.get("tools"):
        raise SetAside("tool calls")
    tags = tags_of(line.get("tags"), line.get("metadata"))
    return _request(messages_of(line["messages"]), None, tags, _max_tokens(line))


TRAFFIC_FORMATS: Registry[TrafficFormat] = Registry(
    "traffic format",
    "harness.traffic_formats",
    {
        "openai": TrafficFormat(
            "openai",
            "OpenAI chat-completions pairs: {request: {messages, ...}, response: {choices}}",
            lambda o: isinstance(o.get("request"), dict | str) and "custom_id" not in o,
            _read_openai,
        ),
        "openai-batch": TrafficFormat(
            "openai-batch",
            "OpenAI batch API input {custom_id, body} and output {custom_id, response} lines",
            lambda o: "custom_id" in o and ("body" in o or "response" in o or "error" in o),
            _read_openai_batch,
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
            lambda o: "input" in o and "output" in o,
            _read_openpipe,
        ),
        "messages": TrafficFormat(
            "messages",
            'plain {"messages": [...]} lines (a final assistant turn is the answer served)',
            lambda o: "messages" in o,
            _read_messages,
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
