"""One declaration per config setting: name, type, default, constraint and a one-line doc.

A record's field is declared with `setting(default, doc=..., gt=0, ...)`; the same
declaration validates a TOML table (`read_table`: unknown keys with a "did you mean", wrong
types, values out of range, each one line naming file, table and key), writes the
configuration reference (`markdown_table`) and the JSON Schema editors validate TOML with
(`json_schema`). Types come from the field's hint: `str`, `int`, `float`, `bool`,
`tuple[str, ...]`, a `Literal[...]` of choices, or any of them `| None` (a key that may be
left out with no default). Why not pydantic: the records stay plain frozen dataclasses that
the project's codec already reads and writes, and the messages keep the file:table:key form.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Union

from harness.records.errors import HarnessError


class ConfigError(HarnessError):
    """A problem with the config; one line naming the file, the table and the key."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
# How a string value is a path: resolved against the config's folder ("path"), and also
# checked to be a file ("file"), or a local folder or a hub id ("model").
PathKind = Literal["path", "file", "model"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One setting as declared: what `read_table` checks and the reference shows."""

    name: str
    kind: Any  # the type hint
    doc: str
    default: Any = REQUIRED
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    pattern: str | None = None
    nonempty: bool = False
    path: PathKind | None = None
    means: str | None = None  # the constraint in words, where the generic phrase says less
    # A sentence for a value out of range, from the value ("did you mean 0.02?").
    hint: Callable[[Any], str | None] | None = None


def setting(default: Any = REQUIRED, *, doc: str, **rules: Any) -> Any:
    """A dataclass field carrying its declaration (`Key`'s fields, but name and kind)."""
    meta = {"setting": {"doc": doc, **rules}}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def keys_of(record: type) -> tuple[Key, ...]:
    """The declared settings of a record class, in field order."""
    hints = typing.get_type_hints(record)
    out = []
    for f in dataclasses.fields(record):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        default = f.default
        if default is dataclasses.MISSING:
            factory = f.default_factory
            default = REQUIRED if factory is dataclasses.MISSING else factory()
        out.append(Key(name=f.name, kind=hints[f.name], default=default, **meta))
    return tuple(out)


def _base(kind: Any) -> Any:
    """The hint without its `| None`."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return kind


def _choices(kind: Any) -> tuple[Any, ...] | None:
    base = _base(kind)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def _is_list(kind: Any) -> bool:
    return typing.get_origin(_base(kind)) is tuple


def _of_ints(kind: Any) -> bool:
    """A list of integers (`tuple[int, ...]`), not of strings."""
    return _is_list(kind) and typing.get_args(_base(kind))[0] is int


def _noun(key: Key) -> str:
    base = _base(key.kind)
    if (choices := _choices(key.kind)) is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    plural = {"path": "paths", "file": "file paths", "model": "paths"}
    things = "integers" if _of_ints(key.kind) else plural.get(key.path or "", "strings")
    if _is_list(key.kind):
        return f"a non-empty list of {things}" if key.nonempty else f"a list of {things}"
    if base is bool:
        return "true or false"
    if base is int:
        return "an integer"
    if base is float:
        return "a number"
    if key.path is not None:
        return {"path": "a path", "file": "a file path", "model": "a path or a hub id"}[key.path]
    return "a non-empty string" if key.nonempty else "a string"


def _num(x: float) -> str:
    """A bound or a value as a reader writes it: 100,000; 0.02; -1."""
    if float(x).is_integer() and abs(x) >= 10_000:
        return f"{int(x):,}"
    return f"{x:g}"


def shown(value: Any) -> str:
    """A value as the TOML file wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else type(value).__name__


def describe(key: Key) -> str:
    """What a value must be, in words: "a positive integer", "a number in (0, 1]"."""
    if key.means:
        return key.means
    noun = _noun(key)
    low = ("(", key.gt) if key.gt is not None else ("[", key.ge) if key.ge is not None else None
    high = (")", key.lt) if key.lt is not None else ("]", key.le) if key.le is not None else None
    if _base(key.kind) is int and key.gt == 0 and high is None:
        return "a positive integer"
    if low and high:
        if _base(key.kind) is int and key.gt == 0:
            return f"a positive integer {'<' if high[0] == ')' else '<='} {_num(high[1])}"
        return f"{noun} in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
    if low:
        return f"{noun} {'>' if low[0] == '(' else '>='} {_num(low[1])}"
    if high:
        return f"{noun} {'<' if high[0] == ')' else '<='} {_num(high[1])}"
    if key.pattern:
        return f"{noun} matching {key.pattern}"
    return noun


def _typed(key: Key, value: Any) -> Any | None:
    """The value as its declared type, or None when it is not one."""
    base = _base(key.kind)
    if (choices := _choices(key.kind)) is not None:
        return value if value in choices and type(value) is type(choices[0]) else None
    if _is_list(key.kind):
        item = int if _of_ints(key.kind) else str
        if not isinstance(value, list) or not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        ):
            return None
        return tuple(value)
    if isinstance(value, bool):
        return value if base is bool else None
    if base is float and isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, base) else None


def _in_range(key: Key, value: Any) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return not (
            (key.gt is not None and not value > key.gt)
            or (key.ge is not None and not value >= key.ge)
            or (key.lt is not None and not value < key.lt)
            or (key.le is not None and not value <= key.le)
        )
    if key.nonempty and (not value or (_is_list(key.kind) and not all(value))):
        return False
    return key.pattern is None or bool(re.fullmatch(key.pattern, value))


def check(key: Key, value: Any, where: str) -> Any:
    """A value of the table, typed and checked against its declaration."""
    typed = _typed(key, value)
    if typed is None:
        near = ""
        if (choices := _choices(key.kind)) is not None and isinstance(value, str):
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
            near = f" (did you mean {close[0]!r}?)" if close else ""
        what = shown(value) if isinstance(value, str | int | float) else type(value).__name__
        raise ConfigError(f"{where}: {key.name} must be {describe(key)}, not {what}{near}")
    if not _in_range(key, typed):
        hint = key.hint(typed) if key.hint else None
        raise ConfigError(
            f"{where}: {key.name} = {shown(value)} must be {describe(key)}"
            + (f"; {hint}" if hint else "")
        )
    return typed


def unknown_key(name: str, known: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return ConfigError(f"{where}: unknown key {name!r} (did you mean {close[0]!r}?)")
    return ConfigError(f"{where}: unknown key {name!r} (known: {', '.join(known)})")


def read_table(
    keys: Sequence[Key],
    data: Any,
    where: str,
    *,
    extra: Sequence[str] = (),
    resolve: Callable[[Key, str], str] | None = None,
) -> dict[str, Any]:
    """The declared keys a TOML table gives, typed and checked (those it leaves out take the
    record's defaults). `extra`: keys read elsewhere (nested tables, another record's).
    `resolve(key, value)` turns a path-kind value into the path to use."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, not {type(data).__name__}")
    names = [k.name for k in keys]
    for name in data:
        if name not in names and name not in extra:
            raise unknown_key(name, [*names, *extra], where)
    out: dict[str, Any] = {}
    for key in keys:
        if key.name not in data:
            if key.default is REQUIRED:
                raise ConfigError(f"{where}: missing key {key.name!r} ({key.doc})")
            continue
        value = check(key, data[key.name], where)
        if key.path is not None and resolve is not None:
            resolved = [resolve(key, v) for v in value] if _is_list(key.kind) else None
            value = tuple(resolved) if resolved is not None else resolve(key, value)
        out[key.name] = value
    return out


# --- what the declaration writes ----------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(keys: Sequence[Key]) -> str:
    """The reference rows of one table: key, type and constraint, default, meaning."""
    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for key in keys:
        default = (
            "required"
            if key.default is REQUIRED
            else "—"
            if key.default is None
            else f"`{_toml(key.default)}`"
        )
        rows.append(f"| `{key.name}` | {describe(key)} | {default} | {key.doc} |")
    return "\n".join(rows)


def json_type(key: Key) -> dict[str, Any]:
    """A key's JSON Schema (draft 2020-12), from the same declaration."""
    out: dict[str, Any] = {"description": key.doc}
    base = _base(key.kind)
    if (choices := _choices(key.kind)) is not None:
        out["enum"] = list(choices)
    elif _of_ints(key.kind):
        out |= {"type": "array", "items": {"type": "integer"}}
    elif _is_list(key.kind):
        out |= {"type": "array", "items": {"type": "string"}}
        if key.nonempty:
            out |= {"minItems": 1, "items": {"type": "string", "minLength": 1}}
    else:
        names = {bool: "boolean", int: "integer", float: "number", str: "string"}
        out["type"] = names.get(base, "string")
        if key.nonempty:
            out["minLength"] = 1
    for rule, word in (
        ("gt", "exclusiveMinimum"),
        ("ge", "minimum"),
        ("lt", "exclusiveMaximum"),
        ("le", "maximum"),
        ("pattern", "pattern"),
    ):
        if (bound := getattr(key, rule)) is not None:
            out[word] = bound
    default = key.default.value if isinstance(key.default, Enum) else key.default
    if default is not REQUIRED and default is not None:
        out["default"] = list(default) if isinstance(default, tuple) else default
    return out


def object_schema(
    keys: Sequence[Key], doc: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A table's JSON Schema: its keys, those required, nothing else allowed."""
    properties = {k.name: json_type(k) for k in keys} | dict(extra or {})
    required = [k.name for k in keys if k.default is REQUIRED]
    out: dict[str, Any] = {
        "type": "object",
        "description": doc,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out
