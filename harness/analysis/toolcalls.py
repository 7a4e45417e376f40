"""Tool calls and structured outputs read from an output's text, and judged (pure).

An output is read into calls by the parser of the chat template's family:

- **hermes** (Hermes, Qwen 2.5/3, SmolLM3, and the harness's own tool prompt for templates
  without tool support): each `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
- **json**, for everything else: Llama 3.x (`{"name": ..., "parameters": {...}}`, its
  `<|python_tag|>` a special token already left out of the text), Mistral (`[TOOL_CALLS]` a
  special token too, then a JSON array of calls), and any model answering with a bare call
  object or a list of them (the generic fallback).

The families are told apart by what the output holds (`<tool_call>` or a JSON value that
starts the output), not by the template's name: the same parsers read every engine's text.
Why not a library's parsers: vLLM's tool parsers need vLLM's engine and tokenizer classes,
and transformers' `parse_response` (declarative response templates) would bring transformers
into the analysis stage, which `harness report` runs without it; our Hermes reading is
checked against transformers' in the tests.

Two outputs' calls are compared as data: the function names, the arguments parsed as JSON
(key order ignored, numbers by value: `2` is `2.0`), the number of calls and their order. A
call is checked against what the item declares: the function exists and its arguments meet
the declared JSON Schema (`jsonschema`, Draft 2020-12). A structured output (`response_format`)
is the output's JSON value: an object for `json_object`, one that meets the schema for
`json_schema`; compared field by field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from harness.records import EvalItem
from harness.records.items import ToolCall

# Why an output holds nothing to check: counted apart from outputs that parse but break a schema
MALFORMED = "a call that cannot be read"
NO_JSON = "no JSON value in the output"
ARROW = " \u2192 "  # between a field's two values in `field_changes`
_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def canonical(value: Any) -> str:
    """JSON text that two equal values share: keys sorted, no spaces, integral floats as
    integers (`2.0` is `2`)."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Calls:
    """The calls an output makes, which parser read them, and whether a call was attempted
    but could not be read (`malformed`: a `<tool_call>` whose JSON does not parse, a call
    object without a name)."""

    calls: tuple[ToolCall, ...]
    parser: str
    malformed: bool = False


def _call(value: Any) -> ToolCall | None:
    """A call object in any family's shape: {name, arguments|parameters} or OpenAI's
    {type: function, function: {name, arguments}}; arguments may be JSON text."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(name, str) or not name or not isinstance(args, dict):
        return None
    return ToolCall(name, canonical(args))


def _looks_like_call(value: Any) -> bool:
    """A call object in some family's shape: a name with arguments or parameters, or
    OpenAI's {function: {...}}."""
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("function"), dict):
        return True
    return "name" in value and ("arguments" in value or "parameters" in value)


def _first_json(text: str) -> Any:
    """The JSON value the output opens with (a fenced ```json block counts), else None."""
    body = text.strip()
    if (m := _FENCE.match(body)) is not None:
        body = m.group(1).strip()
    if body[:1] not in ("{", "["):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return None
    return value


def read_calls(output: str) -> Calls:
    """The calls in `output` (module docstring); no call at all is an empty tuple."""
    if "<tool_call>" in output:
        calls, bad = [], False
        for body in _HERMES.findall(output):
            try:
                value = json.loads(body.strip())
            except ValueError:
                value = None
            # one call a tag, or (as SmolLM2's and some Qwen fine-tunes write) a list of them
            for one in value if isinstance(value, list) and value else [value]:
                call = _call(one)
                if call is None:
                    bad = True
                else:
                    calls.append(call)
        return Calls(tuple(calls), "hermes", bad)
    value = _first_json(output)
    values = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    if not values or not _looks_like_call(values[0]):
        # an object that merely has a "name" field (a structured output's person) is no call
        return Calls((), "json")
    read = [_call(v) for v in values]
    return Calls(tuple(c for c in read if c is not None), "json", None in read)


def show_call(call: ToolCall) -> str:
    """`get_weather(city="Paris", days=2)`: arguments in key order, values as JSON."""
    args = json.loads(call.arguments)
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    return f"{call.name}({inner})"


def show_calls(found: Calls) -> str:
    if found.malformed and not found.calls:
        return "a malformed call"
    shown = "; ".join(show_call(c) for c in found.calls) or "no call"
    return shown + (" + a malformed call" if found.malformed else "")


def reference_calls(text: str) -> tuple[ToolCall, ...] | None:
    """A `tool_call` reference: one call object or a list of them, as JSON text; None when
    it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    values = value if isinstance(value, list) else [value]
    calls = [_call(v) for v in values]
    if not values or None in calls:
        return None
    return tuple(c for c in calls if c is not None)


# --- checked against what the item declares --------------------------------------------------


def _schema_problem(schema_text: str, value: Any) -> str | None:
    import jsonschema

    schema = json.loads(schema_text)
    try:
        validator = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the declared schema is not valid: {exc.message}"
    if error is None:
        return None
    where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where or 'the value'}: {error.message}"


def schema_check(schema_text: str) -> str | None:
    """Why a declared schema cannot be used, or None (checked when an eval set is read)."""
    import jsonschema

    try:
        schema = json.loads(schema_text)
        jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        ).check_schema(schema)
    except (ValueError, jsonschema.exceptions.SchemaError) as exc:
        return str(getattr(exc, "message", exc))
    return None


def call_problem(item: EvalItem, found: Calls) -> str | None:
    """Why the output's calls break the item's declarations, or None: a malformed call, an
    undeclared function, arguments outside its parameters' schema."""
    if found.malformed:
        return MALFORMED
    declared = {t.name: t for t in item.tools}
    for call in found.calls:
        tool = declared.get(call.name)
        if tool is None:
            return f"{call.name}: not a declared function"
        problem = _schema_problem(tool.parameters, json.loads(call.arguments))
        if problem is not None:
            return f"{call.name}: {problem}"
    return None


def structured_value(output: str) -> tuple[Any, bool]:
    """(the JSON value the output gives, whether it gives one): the whole output, a fenced
    block, or the first JSON value in it."""
    value = _first_json(output)
    if value is not None:
        return value, True
    return embedded_json(output)


def embedded_json(text: str) -> tuple[Any, bool]:
    """(the first JSON array or object in `text`, whether there is one)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            return decoder.raw_decode(text, m.start())[0], True
        except ValueError:
            continue
    return None, False


def format_problem(item: EvalItem, output: str) -> str | None:
    """Why the output is not the structured output the item asks for, or None."""
    fmt = item.response_format
    if fmt is None:
        return None
    value, ok = structured_value(output)
    if not ok:
        return NO_JSON
    if not isinstance(value, dict):
        return "the JSON value is not an object"
    return None if fmt.schema is None else _schema_problem(fmt.schema, value)


def unparsed(broken: str | None) -> bool:
    """Whether a `problem` says the output could not be parsed at all (no JSON value, a call
    that cannot be read), rather than parsed and outside its schema."""
    return broken in (MALFORMED, NO_JSON)


def structured(item: EvalItem) -> bool:
    """Whether the item's outputs are checked against a declaration (tools or a format)."""
    return bool(item.tools) or item.response_format is not None


def problem(item: EvalItem, output: str, cut_off: bool = False) -> str | None:
    """Why a structured item's output breaks its declaration (None: it keeps it, or the item
    declares nothing). An output cut off at its token limit is judged as served."""
    if item.tools:
        found = read_calls(output)
        if found.calls or found.malformed:
            return call_problem(item, found)
        # no call: a text answer, valid unless a format is asked for too
    return format_problem(item, output)


def field_changes(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, field by field: `.city: "Paris" → "Pari"`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}"
            if key not in b:
                out.append(f"{where}: dropped")
            elif key not in a:
                out.append(f"{where}: added {json.dumps(b[key], ensure_ascii=False)}")
            else:
                out += field_changes(a[key], b[key], where)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            c
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for c in field_changes(x, y, f"{path}[{i}]")
        ]
    if canonical(a) == canonical(b):
        return []
    show = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    return [f"{path or 'the value'}: {show(a)}{ARROW}{show(b)}"]
