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

from collections.abc import Mapping
from typing import Any

from harness.inputs.logs.common import (
    FAILED,
    Answer,
    BadLine,
    Request,
    SetAside,
    TrafficFormat,
    Turn,
    canonical,
    completion_text,
    messages_of,
    private_key,
    served_text,
    tags_of,
    when,
)
from harness.inputs.logs.openai import (
    is_responses,
    read_openai,
    read_openai_batch,
    read_responses,
)
from harness.inputs.logs.vendors import (
    is_anthropic,
    read_anthropic,
    read_helicone,
    read_langfuse,
    read_litellm,
    read_messages,
    read_openpipe,
)
from harness.inputs.logs.vllm import read_vllm_json, vllm_text
from harness.records.registry import Registry

__all__ = [
    "FAILED",
    "TRAFFIC_FORMATS",
    "Answer",
    "BadLine",
    "Request",
    "SetAside",
    "TrafficFormat",
    "Turn",
    "canonical",
    "completion_text",
    "detect",
    "messages_of",
    "private_key",
    "read_text",
    "served_text",
    "tags_of",
    "when",
]


TRAFFIC_FORMATS: Registry[TrafficFormat] = Registry(
    "traffic format",
    "harness.traffic_formats",
    {
        "openai-batch": TrafficFormat(
            "openai-batch",
            "OpenAI batch API input {custom_id, body} and output {custom_id, response} lines "
            "(chat completions, completions and responses)",
            lambda o: "custom_id" in o and ("body" in o or "response" in o or "error" in o),
            read_openai_batch,
        ),
        "anthropic": TrafficFormat(
            "anthropic",
            "Anthropic Messages API bodies: {request: {system?, messages, tools?}, response: "
            "{type: message, content: [blocks]}}",
            is_anthropic,
            read_anthropic,
        ),
        "openai-responses": TrafficFormat(
            "openai-responses",
            "OpenAI Responses API bodies: {request: {input, instructions?, tools?, text?}, "
            "response: {object: response, output: [items]}}",
            is_responses,
            read_responses,
        ),
        "openai": TrafficFormat(
            "openai",
            "OpenAI chat-completions (or completions) pairs: {request: {messages | prompt, "
            "...}, response: {choices} or its streamed chunks}",
            lambda o: isinstance(o.get("request"), dict | str),
            read_openai,
        ),
        "langfuse": TrafficFormat(
            "langfuse",
            "Langfuse observations (generations export, JSONL or the UI's JSON array): "
            "{id, traceId, type: GENERATION, input, output, ...}",
            lambda o: ("traceId" in o or "trace_id" in o) and "input" in o,
            read_langfuse,
        ),
        "litellm": TrafficFormat(
            "litellm",
            "LiteLLM's StandardLoggingPayload (messages, response, model, metadata, ...)",
            lambda o: "messages" in o and ("call_type" in o or "model_parameters" in o),
            read_litellm,
        ),
        "helicone": TrafficFormat(
            "helicone",
            "Helicone's export (@helicone/export --include-body): request_body, response_body",
            lambda o: "request_body" in o,
            read_helicone,
        ),
        "openpipe": TrafficFormat(
            "openpipe",
            "OpenPipe's request-log export: {input, output, tags}",
            lambda o: "input" in o and "output" in o and not ("traceId" in o or "trace_id" in o),
            read_openpipe,
        ),
        "messages": TrafficFormat(
            "messages",
            'plain {"messages": [...]} lines (a final assistant turn is the answer served)',
            lambda o: "messages" in o,
            read_messages,
        ),
        "vllm": TrafficFormat(
            "vllm",
            "vLLM's request logging, plain text (vllm serve --enable-log-requests "
            "--enable-log-outputs): Received request / Generated response lines",
            lambda o: False,
            read_vllm_json,
            text=vllm_text,
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
