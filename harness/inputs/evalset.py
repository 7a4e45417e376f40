"""Load and validate eval sets (JSONL): `load_evalset(paths) -> list[EvalItem]`.

Bad input never crashes and never drops an item silently: every problem becomes one line
`path:line: id 'x': what is wrong`, all of them are collected, and `EvalsetError` carries
them to the command line, which prints them and exits 2. Blank lines, CRLF line ends and a
UTF-8 byte-order mark are accepted.
"""

from __future__ import annotations

import codecs
import difflib
import glob
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.analysis.answers import KINDS as ANSWER_KINDS
from harness.analysis.answers import TAG as ANSWER_TAG
from harness.analysis.scorers import SCORERS, Scorer
from harness.analysis.toolcalls import canonical, schema_check
from harness.records import DEFAULT_WEIGHT, Difficulty, EvalItem, Message, Role, Source
from harness.records.errors import HarnessError
from harness.records.items import ResponseFormat, Tool, ToolCall
from harness.records.schema import keys_of

# An eval-set line's fields: `EvalItem`'s declared ones.
FIELDS = tuple(k.name for k in keys_of(EvalItem))
MESSAGE_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name")
BOM = b"\xef\xbb\xbf"
# An eval-set file is read whole: one larger than this is refused before it is read (split
# it); 1 GiB holds some 40,000 prompts of 7,000 tokens.
MAX_FILE_BYTES = 2**30


class EvalsetError(HarnessError):
    """One or more problems in the input, each a one-line message naming file and line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return self.problems


class InvalidItem(HarnessError):
    """A problem with one item; the caller adds the file, the line and the id."""


def expand_paths(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files named by paths, globs or directories (their *.jsonl), each once, in order."""
    paths: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if Path(pattern).is_dir():
            matches = sorted(str(p) for p in Path(pattern).glob("*.jsonl"))
        else:
            matches = sorted(glob.glob(pattern, recursive=True)) or (
                [pattern] if Path(pattern).is_file() else []
            )
        if not matches:
            problems.append(f"{pattern}: no file matches this path or glob")
        for match in matches:
            resolved = Path(match).resolve()
            if resolved not in seen:
                seen.add(resolved)
                paths.append(Path(match))
    return paths, problems


def load_evalset(patterns: Sequence[str]) -> list[EvalItem]:
    """Every item of every file, validated; raises EvalsetError listing all problems."""
    paths, problems = expand_paths(patterns)
    items: list[EvalItem] = []
    first_seen: dict[str, Source] = {}
    first_folded: dict[str, tuple[str, Source]] = {}
    for path in paths:
        n_before = len(items)
        for source, parsed in _json_lines(path, problems):
            item = _item_or_problem(parsed, source, problems)
            if item is None:
                continue
            if item.id in first_seen:
                first = first_seen[item.id]
                problems.append(f"{source}: id {item.id!r}: duplicate id, first defined at {first}")
                continue
            folded = _folded(item.id)
            if folded in first_folded:
                other, first = first_folded[folded]
                problems.append(
                    f"{source}: id {item.id!r}: the same id as {other!r} ({first}) "
                    "once Unicode-normalized and case-folded: they would read as "
                    "one item in the report and in review files"
                )
                continue
            first_seen[item.id] = source
            first_folded[folded] = (item.id, source)
            items.append(item)
        if len(items) == n_before and not any(p.startswith(f"{path}:") for p in problems):
            problems.append(f"{path}:1: the file holds no items")
    if problems:
        raise EvalsetError(problems)
    return items


def _folded(item_id: str) -> str:
    """An id as a reader sees it: NFC ("é" composed or not) and case ("Q1", "q1") aside."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", item_id).casefold())


def _json_lines(path: Path, problems: list[str]) -> Iterator[tuple[Source, Any]]:
    """(source, parsed JSON) per non-blank line; unreadable lines become problems."""
    if not path.is_file():  # a device (/dev/zero reads forever), a pipe, a socket
        problems.append(f"{path}:1: not a regular file")
        return
    if (size := path.stat().st_size) > MAX_FILE_BYTES:
        problems.append(
            f"{path}:1: {size:,} bytes; an eval-set file is read whole and may hold at most "
            f"{MAX_FILE_BYTES:,}: split it"
        )
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}:1: cannot read the file: {exc.strerror}")
        return
    if (encoding := _other_encoding(data)) is not None:
        iconv = encoding.replace(" (little-endian)", "LE").replace(" (big-endian)", "BE")
        problems.append(
            f"{path}:1: the file is {encoding} text, not UTF-8: convert it "
            f"(iconv -f {iconv} -t UTF-8 {path})"
        )
        return
    data = data.removeprefix(BOM)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        source = Source(str(path), number)
        try:
            text = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{source}: bytes are not valid UTF-8 (at column {exc.start + 1})")
            continue
        if not text.strip():
            continue
        try:
            yield source, json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except (json.JSONDecodeError, InvalidItem) as exc:
            problems.append(f"{source}: {_id_hint(text)}{_json_problem(exc)}")
        except RecursionError:
            problems.append(f"{source}: JSON nested too deep to read")


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),  # starts with UTF-16's: tried first
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)


def _other_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32, by its byte-order mark or, without one, by where the NUL bytes of
    its ASCII characters fall (JSON's keys and punctuation are ASCII; UTF-8 text holds no NUL
    byte, as JSON escapes it)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[: 4096 - 4096 % 4]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return None
    zeros = [head[k::4].count(0) / len(head[k::4]) for k in range(4)]
    if zeros[2] > 0.9 and zeros[3] > 0.9:
        return "UTF-32 (little-endian)"
    if zeros[0] > 0.9 and zeros[1] > 0.9:
        return "UTF-32 (big-endian)"
    if zeros[1] > 0.5 and zeros[3] > 0.5:
        return "UTF-16 (little-endian)"
    if zeros[0] > 0.5 and zeros[2] > 0.5:
        return "UTF-16 (big-endian)"
    return None


# A prompt longer than this cannot fit any model's context here (128k tokens at ~4 characters
# each); refused when the eval set is read, not after a model has tried to allocate for it.
MAX_PROMPT_CHARS = 512 * 1024
SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: Any, where: str) -> None:
    """Every string of an item is Unicode text: JSON's \\u escapes can spell a lone surrogate,
    which no tokenizer or UTF-8 writer accepts."""
    if isinstance(value, str):
        if (m := SURROGATE.search(value)) is not None:
            raise InvalidItem(
                f"{where or 'a key'} holds a lone surrogate (U+{ord(m.group()):04X} "
                f"at character {m.start() + 1}): not Unicode text"
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, f"{where}.{k}" if where else k)
            _check_text(v, f"{where}.{k}" if where else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise InvalidItem(f"field {key!r} appears twice in one object")
    return dict(pairs)


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return str(exc)


def _id_hint(text: str) -> str:
    """Name the id of a line that is not valid JSON, when it can be seen."""
    match = re.search(r'"id"\s*:\s*"([^"\\]*)"', text)
    return f"id {match.group(1)!r}: " if match else ""


def _item_or_problem(obj: Any, source: Source, problems: list[str]) -> EvalItem | None:
    item_id = obj.get("id") if isinstance(obj, dict) else None
    prefix = (
        f"{source}: id {item_id!r}: " if isinstance(item_id, str) and item_id else f"{source}: "
    )
    try:
        return parse_item(obj, source)
    except InvalidItem as exc:
        problems.append(f"{prefix}{exc}")
        return None


def parse_item(obj: Any, source: Source) -> EvalItem:
    """One JSON value -> EvalItem; raises InvalidItem with a message for the first problem."""
    if not isinstance(obj, dict):
        raise InvalidItem(f"expected a JSON object, got {_json_type(obj)}")
    for key in obj:
        if key not in FIELDS:
            raise InvalidItem(f"unknown field {key!r}{_did_you_mean(key, FIELDS)}")
    item_id = obj.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise InvalidItem("missing id" if item_id is None else "id must be a non-empty string")
    _check_text(obj, "")
    prompt, messages = _prompt_or_messages(obj)
    size = len(prompt or "") + sum(len(m.content) for m in messages or ())
    if size > MAX_PROMPT_CHARS:
        raise InvalidItem(
            f"the prompt is {size:,} characters; at most {MAX_PROMPT_CHARS:,} "
            "(about 128k tokens, more than any context here)"
        )
    if "tools" in obj and messages is None:
        raise InvalidItem("tools need a conversation: give messages, not prompt")
    scorer = _scorer(obj.get("scorer", Scorer.EXACT.value))
    difficulty = _enum(Difficulty, obj.get("difficulty", Difficulty.COMMON.value), "difficulty")
    return EvalItem(
        id=item_id,
        source=source,
        prompt=prompt,
        messages=messages,
        reference=_reference(obj.get("reference"), scorer),
        scorer=scorer,
        difficulty=difficulty,
        weight=_weight(obj.get("weight"), difficulty),
        tags=_tags(obj.get("tags")),
        max_new_tokens=_max_new_tokens(obj.get("max_new_tokens")),
        extract=_extract(obj.get("extract")),
        logged_output=_logged_output(obj.get("logged_output")),
        tools=_tools(obj.get("tools")),
        response_format=_response_format(obj.get("response_format")),
    )


def _tools(value: Any) -> tuple[Tool, ...]:
    """OpenAI's tool list: [{"type": "function", "function": {name, description?,
    parameters?}}] (a bare {name, ...} function object is taken too)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise InvalidItem("tools must be a non-empty list of function objects")
    out: list[Tool] = []
    for i, tool in enumerate(value):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidItem(
                f'tools[{i}] must be {{"type": "function", "function": {{"name": ...}}}}'
            )
        if isinstance(tool, dict) and tool.get("type", "function") != "function":
            raise InvalidItem(f"tools[{i}].type: only function tools are called here")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict) or (why := schema_check(canonical(params))) is not None:
            shown = "an object" if not isinstance(params, dict) else why
            raise InvalidItem(f"tools[{i}].function.parameters: not a JSON Schema ({shown})")
        if fn["name"] in {t.name for t in out}:
            raise InvalidItem(f"tools[{i}]: {fn['name']!r} is declared twice")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise InvalidItem(f"tools[{i}].function.description must be a string")
        out.append(Tool(fn["name"], description, canonical(params)))
    return tuple(out)


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidItem("response_format.json_schema.schema must be a JSON Schema object")
        if (why := schema_check(canonical(schema))) is not None:
            raise InvalidItem(f"response_format.json_schema.schema: not a JSON Schema ({why})")
        name = spec.get("name") if isinstance(spec, dict) else None
        return ResponseFormat(
            "json_schema", name if isinstance(name, str) else None, canonical(schema)
        )
    raise InvalidItem(
        'response_format must be {"type": "json_object"} or {"type": "json_schema", '
        '"json_schema": {"name": ..., "schema": {...}}}'
    )


def _tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise InvalidItem(f"{where} must be a list of calls")
    out = []
    for i, call in enumerate(value):
        fn = call.get("function", call) if isinstance(call, dict) else None
        args = fn.get("arguments", {}) if isinstance(fn, dict) else None
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        if (
            not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
            or not isinstance(args, dict)
        ):
            raise InvalidItem(
                f'{where}[{i}] must be {{"function": {{"name": ..., "arguments": {{...}}}}}} '
                "(arguments an object or its JSON text)"
            )
        out.append(ToolCall(fn["name"], canonical(args)))
    return tuple(out)


def _logged_output(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidItem(f"logged_output must be a string; got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _did_you_mean(key: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(options)})"


def _enum(kind: Any, value: Any, field: str) -> Any:
    allowed = [m.value for m in kind]
    if not isinstance(value, str) or value not in allowed:
        raise InvalidItem(f"{field} must be one of {', '.join(allowed)}; got {json.dumps(value)}")
    return kind(value)


def _prompt_or_messages(obj: dict[str, Any]) -> tuple[str | None, tuple[Message, ...] | None]:
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if has_prompt == has_messages:
        raise InvalidItem(
            "give exactly one of 'prompt' or 'messages'" + (" (both given)" if has_prompt else "")
        )
    if has_prompt:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise InvalidItem("prompt must be a non-empty string")
        return prompt, None
    return None, _messages(obj["messages"])


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidItem("messages must be a non-empty list of {role, content} objects")
    out = []
    roles = [r.value for r in Role]
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise InvalidItem(f"messages[{i}] must be an object, got {_json_type(msg)}")
        for key in msg:
            if key not in MESSAGE_FIELDS:
                raise InvalidItem(
                    f"messages[{i}]: unknown field {key!r}{_did_you_mean(key, MESSAGE_FIELDS)}"
                )
        if msg.get("role") not in roles:
            got = json.dumps(msg.get("role"))
            raise InvalidItem(f"messages[{i}].role must be one of {', '.join(roles)}; got {got}")
        calls: tuple[ToolCall, ...] = ()
        if "tool_calls" in msg:
            if msg["role"] != "assistant":
                raise InvalidItem(f"messages[{i}].tool_calls: only an assistant turn calls tools")
            calls = _tool_calls(msg["tool_calls"], f"messages[{i}].tool_calls")
        content = msg.get("content")
        if content is None and calls:
            content = ""  # a turn that only calls
        if not isinstance(content, str):
            raise InvalidItem(
                f"messages[{i}].content must be a string"
                + ("" if "content" in msg else " (missing)")
            )
        call_id = msg.get("tool_call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise InvalidItem(f"messages[{i}].tool_call_id must be a string")
        out.append(Message(Role(msg["role"]), content, calls, call_id))
    return tuple(out)


def _scorer(value: Any) -> str:
    """A scorer's name: built in, or an installed plug-in's (`harness.scorers`)."""
    if not isinstance(value, str) or not SCORERS.known(value):
        names = ", ".join(SCORERS.names())
        raise InvalidItem(f"scorer must be one of {names}; got {json.dumps(value)}")
    return Scorer(value) if value in Scorer.__members__.values() else value


def _reference(value: Any, scorer: str) -> tuple[str, ...]:
    table = SCORERS.get(scorer)
    if value is None:
        if table.needs_reference:
            raise InvalidItem(f"scorer {scorer} needs a reference")
        return ()
    if not table.needs_reference:
        raise InvalidItem(f"scorer {scorer} compares with the baseline and takes no reference")
    refs = [value] if isinstance(value, str) else value
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
        raise InvalidItem("reference must be a non-empty string or a non-empty list of them")
    for ref in refs:
        problem = table.check_reference(ref)
        if problem is not None:
            raise InvalidItem(problem)
    return tuple(refs)


def _weight(value: Any, difficulty: Difficulty) -> float:
    if value is None:
        return DEFAULT_WEIGHT[difficulty]
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = f"{_json_type(value)} {json.dumps(value)}"
        raise InvalidItem(f"weight must be a number > 0; got {got}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidItem(f"weight must be a finite number > 0; got {value}")
    return float(value)


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise InvalidItem("tags must be a list of non-empty strings")
    kinds = [t.removeprefix(ANSWER_TAG) for t in value if t.startswith(ANSWER_TAG)]
    for kind in kinds:
        if kind not in ANSWER_KINDS:
            close = difflib.get_close_matches(kind, ANSWER_KINDS, n=1)
            hint = f" (did you mean '{ANSWER_TAG}{close[0]}'?)" if close else ""
            raise InvalidItem(
                f"unknown answer kind in tag '{ANSWER_TAG}{kind}'{hint}; known: "
                f"{', '.join(ANSWER_KINDS)}"
            )
    if len(kinds) > 1:
        raise InvalidItem(f"at most one answer tag per item; got {', '.join(kinds)}")
    return tuple(value)


def _extract(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidItem("extract must be a non-empty regex string")
    try:
        re.compile(value)
    except re.error as exc:
        raise InvalidItem(f"invalid extract regex {value!r}: {exc}") from None
    return value


def _max_new_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidItem(f"max_new_tokens must be a positive integer; got {json.dumps(value)}")
    return value
