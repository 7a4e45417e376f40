"""An item's conversation as a chat template takes it, tools and structured outputs included.

A template with tool support (its source reads `tools`: Qwen, Llama 3.x, Mistral, Hermes,
SmolLM3...) gets the declared tools and the conversation's calls in the shape transformers
documents (`apply_chat_template(messages, tools=...)`), and renders them its own way. A
template without it (SmolLM2's, Gemma's) gets the harness's tool prompt instead, in the
Hermes form most open models were tuned on: the tools as JSON in the system turn, each call
asked for as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, earlier calls
written that way in the assistant's turns and tool results as `<tool_response>` user turns
(a template without tool support may refuse a `tool` role). Either way every engine is fed
the baseline's ids of the one rendered text.

No chat template constrains decoding, and engines constrain it differently (or not at all),
so a structured output (`response_format`) is asked for in words: the system turn says to
answer with one JSON object, meeting the schema when one is given. Outputs are then checked,
not forced: the parse and schema-valid rates are what is measured.
"""

from __future__ import annotations

import json
from typing import Any

from harness.records import EvalItem

TOOL_PROMPT = (
    "You may call functions to answer. Functions:\n<tools>\n{tools}\n</tools>\n"
    'To call one, answer <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>'
)
FORMAT_PROMPT = "Answer with one JSON object and nothing else."
SCHEMA_PROMPT = (
    "Answer with one JSON object that meets this JSON Schema, and nothing else:\n{schema}"
)


def supports_tools(template: str | None) -> bool:
    """Whether a chat template renders declared tools itself (it reads `tools`)."""
    return template is not None and "tools" in template


def chat_input(
    item: EvalItem, template: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(the messages, the tools to pass to the template or None) for a `messages` item."""
    messages = item.conversation() or []
    tools = item.tool_schemas()
    notes: list[str] = []
    if tools is not None and not supports_tools(template):
        listed = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
        notes.append(TOOL_PROMPT.format(tools=listed))
        messages = [_plain(m) for m in messages]
        tools = None
    fmt = item.response_format
    if fmt is not None:
        notes.append(
            FORMAT_PROMPT if fmt.schema is None else SCHEMA_PROMPT.format(schema=fmt.schema)
        )
    if notes:
        messages = _with_system(messages, "\n\n".join(notes))
    return messages, tools


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A turn with calls or a tool's result written as text, for a template that has no
    tool support."""
    if message.get("tool_calls"):
        calls = "\n".join(
            "<tool_call>" + json.dumps(c["function"], ensure_ascii=False) + "</tool_call>"
            for c in message["tool_calls"]
        )
        text = (message["content"] + "\n" if message["content"] else "") + calls
        return {"role": "assistant", "content": text}
    if message["role"] == "tool":
        return {
            "role": "user",
            "content": f"<tool_response>\n{message['content']}\n</tool_response>",
        }
    return {"role": message["role"], "content": message["content"]}


def _with_system(messages: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """The note appended to the conversation's system turn, or a system turn made of it."""
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{note}" if first["content"] else note
        return [first, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]
