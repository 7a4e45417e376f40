"""What an eval set holds. Input is validated at the edge (`evalset.py`, with the scorer
table of `scorers.py`); `__post_init__` guards the invariants of items built in code."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from harness.records.errors import RecordError
from harness.records.schema import setting


class Difficulty(Enum):
    COMMON = "common"
    HARD = "hard"


class Role(Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # a tool's result, answering an assistant's call


# Weights when an item gives none: a loss on a hard case hurts three times as much.
DEFAULT_WEIGHT = {Difficulty.COMMON: 1.0, Difficulty.HARD: 3.0}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call: its name and its arguments as canonical JSON text (keys sorted, no
    spaces), so that equal calls are equal records."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn's calls
    tool_call_id: str | None = None  # a tool turn: the call it answers


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call (the OpenAI function schema): `parameters` is its JSON
    Schema as canonical JSON text."""

    name: str
    description: str
    parameters: str


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """A structured-output request: `json_object` (any JSON object) or `json_schema` (one
    that meets `schema`, canonical JSON text)."""

    type: str
    name: str | None = None
    schema: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where an item came from, for error messages: `path:line`."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalItem:
    """One eval-set line. Its fields are declared here, with the doc the eval-set format page
    shows (`make docs`); `harness.inputs.evalset` reads a line against them."""

    id: str = setting(doc="unique across all loaded files", nonempty=True)
    source: Source  # the file and line it was read from (not a field of the line)
    prompt: str | None = setting(
        None,
        doc="raw text, fed as is (the tokenizer adds its special tokens); exactly one of "
        "`prompt` and `messages`",
        nonempty=True,
    )
    messages: tuple[Message, ...] | None = setting(
        None,
        doc="rendered with the tokenizer's chat template, identically for both models; an "
        "assistant turn may carry `tool_calls` and a `tool` turn answers one (`tool_call_id`)",
        means='a non-empty list of {"role": system/user/assistant/tool, "content": "..."}',
    )
    tools: tuple[Tool, ...] = setting(
        (),
        doc="functions the model may call (OpenAI's shape): rendered by the chat template's "
        "tool support, and the outputs' calls judged (docs/tools.md)",
        means='a non-empty list of {"type": "function", "function": {"name", "description", '
        '"parameters"}}',
    )
    response_format: ResponseFormat | None = setting(
        None,
        doc="a structured output asked for (OpenAI's shape): outputs are parsed as JSON and "
        "checked against the schema (docs/tools.md)",
        means='{"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", '
        '"schema"}}',
    )
    reference: tuple[str, ...] = setting(
        (),
        doc="acceptable answer(s); reference scorers need one, `agreement` takes none",
        means="a non-empty string, or a non-empty list of them",
    )
    # A name of the scorer table (`harness.analysis.scorers.Scorer`, a str enum): the table decides
    # whether a reference is needed and what it may look like, so adding a scorer is one file.
    scorer: str = setting(
        "exact",
        doc="how an output is scored: a scorer below, or an installed plug-in's",
        means="a scorer's name",
    )
    difficulty: Difficulty = setting(
        Difficulty.COMMON,
        doc="slices the report; hard items weigh more",
        means="one of common, hard",
    )
    weight: float = setting(
        1.0,
        doc="how much a loss on this item hurts (default 1 for common, 3 for hard)",
        gt=0,
    )
    tags: tuple[str, ...] = setting(
        (), doc="slices (task family, capability); `answer:<kind>` says how to read the answer"
    )
    max_new_tokens: int | None = setting(
        None, doc="overrides the run's [generation] max_new_tokens", gt=0
    )
    extract: str | None = setting(
        None,
        doc="runs before the scorer: its first group (or whole match) is the answer scored",
        means="a non-empty regular expression",
    )
    logged_output: str | None = setting(
        None,
        doc="the answer production served for this request (`harness traffic import` keeps it)",
        means="a string",
    )

    def __post_init__(self) -> None:
        if not self.id:
            raise RecordError(f"{self.source}: empty id")
        if (self.prompt is None) == (self.messages is None):
            raise RecordError(f"{self.source}: id {self.id!r}: give exactly one of prompt/messages")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise RecordError(f"{self.source}: id {self.id!r}: weight must be finite and > 0")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise RecordError(f"{self.source}: id {self.id!r}: max_new_tokens must be > 0")

    @property
    def hard(self) -> bool:
        return self.difficulty is Difficulty.HARD

    def token_limit(self, default: int) -> int:
        """How many tokens the item may be answered in: its own `max_new_tokens`, else the
        run's (`default`). The one rule every stage uses (the plan, the importer's context
        check)."""
        return self.max_new_tokens or default

    def conversation(self) -> list[dict[str, Any]] | None:
        """The messages in OpenAI's (and chat templates') shape: an assistant's calls as
        `tool_calls` [{type, function: {name, arguments}}], arguments an object."""
        if self.messages is None:
            return None
        out: list[dict[str, Any]] = []
        for m in self.messages:
            row: dict[str, Any] = {"role": m.role.value, "content": m.content}
            if m.tool_calls:
                row["tool_calls"] = [
                    {
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.loads(c.arguments)},
                    }
                    for c in m.tool_calls
                ]
            if m.tool_call_id is not None:
                row["tool_call_id"] = m.tool_call_id
            out.append(row)
        return out

    def tool_schemas(self) -> list[dict[str, Any]] | None:
        """The declared tools in OpenAI's shape, or None."""
        if not self.tools:
            return None
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": json.loads(t.parameters),
                },
            }
            for t in self.tools
        ]

    def response_format_json(self) -> dict[str, Any] | None:
        """The structured output asked for, in OpenAI's shape, or None."""
        fmt = self.response_format
        if fmt is None:
            return None
        if fmt.schema is None:
            return {"type": fmt.type}
        spec: dict[str, Any] = {"schema": json.loads(fmt.schema)}
        if fmt.name is not None:
            spec["name"] = fmt.name
        return {"type": fmt.type, "json_schema": spec}


def conversation_text(
    prompt: str | None, messages: list[dict[str, Any]] | None, declared: str | None = None
) -> str:
    """A prompt, or a conversation in OpenAI's shape (`EvalItem.conversation`, a logged
    request's messages), as one text a reviewer reads: a line per message, "[role] content",
    an assistant's calls below it, what the item `declared` (its tools, its response format)
    first."""
    if prompt is not None:
        return str(prompt)
    lines = [f"[declared] {declared}"] if declared else []
    for m in messages or ():
        calls = [
            f"{c['function']['name']}({json.dumps(c['function']['arguments'], ensure_ascii=False)})"
            for c in m.get("tool_calls") or ()
        ]
        lines.append(f"[{m['role']}] {m['content']}" + "".join(f"\n  call {c}" for c in calls))
    return "\n".join(lines)
