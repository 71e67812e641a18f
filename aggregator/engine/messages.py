"""Stage messages as JSON and back: what a queue carries between machines.

Dataclasses become objects keyed by field name; bytes become `{"$bytes": base64}`; tuples and
frozensets become lists; enums their values. Decoding reads the dataclass's own type hints,
so a message decodes to exactly the value that was encoded (`decode(T, encode(x)) == x`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def encode(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def decode(kind: type[T], text: str) -> T:
    value: T = _typed(kind, json.loads(text))
    return value


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _typed(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None:
            return None
        if len(options) != 1:
            raise TypeError(f"cannot decode a value of {kind}: more than one type is possible")
        return _typed(options[0], value)
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)  # type: ignore[arg-type]
        return typing.cast(Any, kind)(**{name: _typed(hints[name], v) for name, v in value.items()})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is bytes:
        return base64.b64decode(value["$bytes"])
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v) for v in value)
        return tuple(_typed(a, v) for a, v in zip(args, value, strict=True))
    if origin is frozenset:
        (arg,) = typing.get_args(kind)
        return frozenset(_typed(arg, v) for v in value)
    if origin is dict:
        _, arg = typing.get_args(kind)
        return {k: _typed(arg, v) for k, v in value.items()}
    if kind is float and isinstance(value, int):
        return float(value)
    return value
