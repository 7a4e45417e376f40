"""Frozen records <-> JSON values, by their type hints: the one serializer of the project.

`to_json` turns dataclasses into dicts (field order kept), enums into their values, tuples
into lists, and `Path`s into strings; a class with its own `to_json`/`from_json` methods is
used as it says. `from_json(cls, data)` is the inverse, checked against the hints: a field
of the wrong type or a missing field is a `CodecError` naming the path into the data.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from harness.records.errors import HarnessError

T = TypeVar("T")


class CodecError(HarnessError):
    """JSON that does not fit the record it should hold."""


def to_json(value: Any) -> Any:
    if hasattr(value, "to_json") and not isinstance(value, type):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(kind: Any, data: Any, where: str = "$") -> Any:
    """`data` read as `kind` (a record class or a typing form)."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return data
    if origin is Literal:
        if data not in typing.get_args(kind) or isinstance(data, bool):
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise CodecError(f"{where}: {data!r} is not one of {choices}")
        return data
    if origin in (Union, types.UnionType):
        return _union(typing.get_args(kind), data, where)
    if isinstance(kind, type) and hasattr(kind, "from_json"):
        return kind.from_json(data)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _record(kind, data, where)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(data)
        except ValueError:
            raise CodecError(f"{where}: {data!r} is not a {kind.__name__}") from None
    if origin is tuple:
        args = typing.get_args(kind)
        items = _expect(list, data, where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(items))
        if len(args) != len(items):
            raise CodecError(f"{where}: expected {len(args)} entries, got {len(items)}")
        pairs = enumerate(zip(args, items, strict=True))
        return tuple(from_json(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin in (dict, Mapping) or kind in (dict, Mapping):
        _, val = typing.get_args(kind) or (str, Any)
        items = _expect(dict, data, where)
        return {k: from_json(val, v, f"{where}.{k}") for k, v in items.items()}
    if origin is list:
        (arg,) = typing.get_args(kind)
        return [
            from_json(arg, v, f"{where}[{i}]") for i, v in enumerate(_expect(list, data, where))
        ]
    return _scalar(kind, data, where)


def _expect(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, kind):
        raise CodecError(f"{where}: expected {kind.__name__}, got {type(data).__name__}")
    return data


def _scalar(kind: Any, data: Any, where: str) -> Any:
    if kind is Path:
        return Path(_expect(str, data, where))
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise CodecError(f"{where}: expected a number, got {type(data).__name__}")
        return float(data)
    if kind is int and isinstance(data, bool):
        raise CodecError(f"{where}: expected an integer, got bool")
    if kind is type(None):
        if data is not None:
            raise CodecError(f"{where}: expected null")
        return None
    return _expect(kind, data, where)


def _union(args: tuple[Any, ...], data: Any, where: str) -> Any:
    if data is None and type(None) in args:
        return None
    problems = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return from_json(arg, data, where)
        except CodecError as exc:
            problems.append(str(exc))
    raise CodecError(problems[0] if len(problems) == 1 else f"{where}: fits none of {args}")


def _record(kind: type[T], data: Any, where: str) -> T:
    obj = _expect(dict, data, where)
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        if f.name in obj:
            values[f.name] = from_json(hints[f.name], obj[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CodecError(f"{where}: missing field {f.name!r}")
    return kind(**values)
