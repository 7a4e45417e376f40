"""What every log format shares: the shape a request is read into (`Request`, `Turn`,
`Answer`), the errors a line raises, and the pieces that read messages, answers, tools,
structured-output requests, tags and timestamps."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.records.errors import HarnessError

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


@dataclass(frozen=True, slots=True)
class ServedToken:
    """One served token as a response's `logprobs` give it: its bytes (not an id: ids are
    the server's, bytes are what any engine with the same vocabulary can map), its log-prob,
    and the most likely alternatives at that position (the top log-probs the client asked
    for, the token itself usually among them)."""

    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    messages: tuple[Turn, ...] = ()  # ending with the turn the model answers
    prompt: str | None = None  # a text-completion request: its prompt, served raw
    tools: str | None = None  # the declared tools, OpenAI's shape, as canonical JSON text
    response_format: str | None = None  # OpenAI's shape, as canonical JSON text
    logged_output: str | None = None  # what was served, when the log has it
    # the served tokens' log-probs, where the client asked for them (`served_logprobs`)
    logged_logprobs: tuple[ServedToken, ...] | None = None
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


def as_object(value: Any, field: str) -> Mapping[str, Any]:
    if isinstance(value, str):  # some tools store bodies as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadLine(field, f"a JSON string that is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise BadLine(field, f"expected an object, got {type(value).__name__}")
    return value


TEXT_PARTS = ("text", "input_text", "output_text")


def content_text(content: Any, field: str) -> str:
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


def arguments_json(value: Any, field: str) -> str:
    """A call's arguments (an object, or its JSON text as OpenAI sends it) as compact JSON
    text, its keys in the order logged (a replay serves them as they came; comparisons read
    them as data)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise BadLine(field, "arguments that are not JSON") from None
    if not isinstance(value, dict):
        raise BadLine(field, "arguments must be an object")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def calls_of(value: Any, field: str) -> tuple[tuple[str, str], ...]:
    """OpenAI's `tool_calls` [{id, type, function: {name, arguments}}] (or a legacy
    `function_call` object) as (name, arguments)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for i, call in enumerate(items):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadLine(f"{field}[{i}]", "a call must name its function")
        out.append((fn["name"], arguments_json(fn.get("arguments", {}), f"{field}[{i}].arguments")))
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
            calls = calls_of(msg[key], f"{where}.{key}")
        call_id = msg.get("tool_call_id") if ROLES[role] == "tool" else None
        content = content_text(msg.get("content"), f"{where}.content")
        out.append(Turn(ROLES[role], content, calls, call_id if isinstance(call_id, str) else None))
    return out


def request_of(
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


def prompt_request_of(
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


def chunks_of(value: Any) -> list[Any] | None:
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


def reassembled_text(chunks: list[Any], field: str) -> str:
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
        (name, arguments_json(args, f"{field}.tool_calls[{i}].arguments"))
        for i, (name, args) in sorted(calls.items())
    )
    return served_text("".join(text), done)


def completion_text(value: Any, field: str) -> str | None:
    """The answer in an OpenAI chat.completion object, a completions-API one, or a streamed
    chunk list (None: no answer logged). An error sets the request aside (FAILED)."""
    if value is None:
        return None
    if (chunks := chunks_of(value)) is not None:
        return reassembled_text(chunks, field)
    if isinstance(value, str):
        return value
    body = as_object(value, field)
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
            calls_of(message[key], f"{field}.choices[0].message.{key}") if message.get(key) else ()
        )
        content = content_text(message.get("content"), f"{field}.choices[0].message.content")
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


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def model_tag(value: Any) -> list[str]:
    return [f"model={value}"] if isinstance(value, str) and value else []


def tools_of(request: Mapping[str, Any], field: str) -> str | None:
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


def response_format_of(value: Any) -> str | None:
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


def declared_of(request: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The tools and structured-output request a chat-completions body declares."""
    return {
        "tools": tools_of(request, f"{field}.tools"),
        "response_format": response_format_of(request.get("response_format")),
    }


def max_tokens_of(request: Mapping[str, Any]) -> Any:
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


def response_id_of(value: Any) -> str | None:
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


def sighting(response: Any, stamp: Any) -> dict[str, Any]:
    """Where a request was seen, as `request_of`'s keywords: the response's provider id and
    the line's time; and the served log-probs where the response carries them."""
    if isinstance(response, str) and response.lstrip().startswith("{"):
        try:
            response = json.loads(response)
        except (json.JSONDecodeError, RecursionError):
            response = None
    return {
        "request_id": response_id_of(response),
        "time": when(stamp),
        "logged_logprobs": served_logprobs(response),
    }


# A response's log-probs are untrusted like the rest of it: at most this many positions and
# alternatives (OpenAI allows 20), each token at most this many bytes.
MAX_SERVED_TOKENS, MAX_TOP_LOGPROBS, MAX_TOKEN_BYTES = 8192, 20, 256


class _Malformed(ValueError):
    pass


def _logprob(value: Any) -> float:
    # A log-prob is a finite number at most 0; a server's rounding may put the top token a
    # hair above 0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed("a log-prob that is not a number")
    lp = float(value)
    if not math.isfinite(lp) or lp > 1e-4:
        raise _Malformed(f"a log-prob of {lp}")
    return min(lp, 0.0)


def _token(position: Mapping[str, Any]) -> bytes:
    raw = position.get("bytes")
    if isinstance(raw, list):
        if len(raw) > MAX_TOKEN_BYTES or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw
        ):
            raise _Malformed("token bytes that are not bytes")
        return bytes(raw)
    token = position.get("token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise _Malformed("a token that is not a string")
    return token.encode("utf-8", "surrogatepass")


def _chat_logprobs(content: list[Any]) -> tuple[ServedToken, ...]:
    out = []
    for position in content:
        if not isinstance(position, dict):
            raise _Malformed("a position that is not an object")
        top = position.get("top_logprobs") or []
        if not isinstance(top, list) or len(top) > MAX_TOP_LOGPROBS:
            raise _Malformed("top_logprobs that is not a short list")
        alts = []
        for alt in top:
            if not isinstance(alt, dict):
                raise _Malformed("an alternative that is not an object")
            alts.append((_token(alt), _logprob(alt.get("logprob"))))
        out.append(ServedToken(_token(position), _logprob(position.get("logprob")), tuple(alts)))
    return tuple(out)


def _legacy_logprobs(body: Mapping[str, Any]) -> tuple[ServedToken, ...]:
    """The completions API's older shape: parallel `tokens`, `token_logprobs` and
    `top_logprobs` (one {token: log-prob} object per position)."""
    tokens, lps = body.get("tokens"), body.get("token_logprobs")
    top = body.get("top_logprobs") or [None] * len(tokens or [])
    if not (isinstance(tokens, list) and isinstance(lps, list) and isinstance(top, list)):
        raise _Malformed("tokens and token_logprobs must be lists")
    if not len(tokens) == len(lps) == len(top):
        raise _Malformed("tokens, token_logprobs and top_logprobs differ in length")
    out = []
    for token, lp, alts in zip(tokens, lps, top, strict=True):
        if alts is not None and (not isinstance(alts, dict) or len(alts) > MAX_TOP_LOGPROBS):
            raise _Malformed("top_logprobs must hold short objects")
        pairs = tuple((_token({"token": t}), _logprob(v)) for t, v in (alts or {}).items())
        out.append(ServedToken(_token({"token": token}), _logprob(lp), pairs))
    return tuple(out)


def served_logprobs(value: Any) -> tuple[ServedToken, ...] | None:
    """The served tokens' log-probs in an OpenAI chat.completion or completions object
    (`choices[0].logprobs`: `content` positions, or the completions API's parallel lists);
    None where the answer carries none, is streamed, or its log-probs are malformed: they
    are then not used, and the answer itself still stands."""
    if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
        return None
    first = value["choices"][0] if value["choices"] else None
    body = first.get("logprobs") if isinstance(first, dict) else None
    if not isinstance(body, dict):
        return None
    try:
        if isinstance(body.get("content"), list):
            served = _chat_logprobs(body["content"])
        elif "tokens" in body:
            served = _legacy_logprobs(body)
        else:
            return None
    except _Malformed:
        return None
    return served if 0 < len(served) <= MAX_SERVED_TOKENS else None
