"""The only values that cross between a candidate program and its tests: plain Python values in a tagged
JSON encoding, inside length-prefixed frames.

Allowed, recursively and with exact types (no subclasses): None, bool, int, float, complex, str, bytes,
list, tuple, dict, set and frozenset, and those eleven types themselves as values (mbpp-533 passes
`int`, `str` and `float` to the function under test). `collections.Counter`, `defaultdict` and
`OrderedDict` become `dict` (MBPP's references return them and its tests compare them with dicts).
Anything else raises `WireError`. JSON objects are always tags, so tuples stay tuples and dict keys keep their types:

>>> decode_value(encode_value([int, type(None)]))
[<class 'int'>, <class 'NoneType'>]
>>> encode_value({(1, 2): [b"x", {3.5}], "k": None})
'{"d":[[{"t":[1,2]},[{"b":"78"},{"s":[3.5]}]],["k",null]]}'
>>> decode_value(encode_value({(1, 2): [b"x", {3.5}], "k": None}))
{(1, 2): [b'x', {3.5}], 'k': None}

Bounds (checked on both sides): at most `MAX_BYTES` encoded, `MAX_DEPTH` nested containers and
`MAX_INT_DIGITS` decimal digits per integer. Decoding never runs code: the JSON scanner builds dicts,
lists, strings and numbers, and the walk below turns them into exact builtin types.

This module is stdlib-only on purpose: its code also runs inside the sandboxes (see `inside.py`), where
every millisecond of start-up counts twice per sample; so it speaks JSON through the `_json`
accelerator directly (importing `json` pulls in `re` and `enum`, 15 ms), with `json` as the fallback.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

try:
    import _json
except ImportError:  # an interpreter without the accelerator
    _json = None

MAX_BYTES = 1 << 20
"""Largest encoded value (bytes of JSON)."""
MAX_DEPTH = 100
"""Deepest nesting of containers."""
MAX_INT_DIGITS = 4300
"""Most decimal digits of one integer (Python's own default limit for int <-> str)."""
FRAME_OVERHEAD = 4096
"""Room for a message's own fields around one value."""
_INT_LIMIT = 10**MAX_INT_DIGITS
_CONVERTED = ("Counter", "defaultdict", "OrderedDict")
_TYPES = {t.__name__: t for t in (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)}


class WireError(ValueError):
    """A value that may not cross, or a message that is malformed, oversized or cut short."""


class NotPlain(WireError):
    """A value of a type that may not cross (as opposed to a plain value over the bounds)."""


def _converted(kind: type) -> bool:
    """Whether `kind` is exactly collections' Counter, defaultdict or OrderedDict (read as dicts)."""
    collections = sys.modules.get("collections")  # a program that returns one has imported it
    return collections is not None and kind.__name__ in _CONVERTED and getattr(collections, kind.__name__, None) is kind


def _check_int(value: int) -> int:
    if not -_INT_LIMIT < value < _INT_LIMIT:
        raise WireError(f"an integer over {MAX_INT_DIGITS} digits")
    return value


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"F": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def to_json(value: Any, depth: int = 0) -> Any:
    """The JSON-ready form of a plain value; `NotPlain` for another type, `WireError` over the bounds."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return _check_int(value)
    if kind is float:
        return _float(value)
    if depth >= MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if kind is list:
        return [to_json(v, depth + 1) for v in value]
    if kind is tuple:
        return {"t": [to_json(v, depth + 1) for v in value]}
    if kind is dict or _converted(kind):
        return {"d": [[to_json(k, depth + 1), to_json(v, depth + 1)] for k, v in dict.items(value)]}
    if kind is set:
        return {"s": [to_json(v, depth + 1) for v in value]}
    if kind is frozenset:
        return {"f": [to_json(v, depth + 1) for v in value]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [_float(value.real), _float(value.imag)]}
    if kind is type and _TYPES.get(value.__name__) is value:
        return {"y": value.__name__}
    raise NotPlain(f"a value of type {kind.__name__} cannot be passed (only plain builtin values can)")


def _special(body: Any) -> float:
    if body == "nan":
        return math.nan
    if body in ("inf", "-inf"):
        return math.inf if body == "inf" else -math.inf
    raise WireError("malformed float")


def _number(item: Any) -> float:
    if type(item) is float or type(item) is int:
        return float(item)
    if type(item) is dict and len(item) == 1 and "F" in item:
        return _special(item["F"])
    raise WireError("malformed complex")


def _items(body: Any) -> list:
    if type(body) is not list:
        raise WireError("malformed container")
    return body


def from_json(obj: Any, depth: int = 0) -> Any:
    """The plain value of a parsed JSON form (the inverse of `to_json`); `WireError` for anything malformed."""
    kind = type(obj)
    if obj is None or kind is bool or kind is str or kind is float:
        return obj
    if kind is int:
        return _check_int(obj)
    if depth >= MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if kind is list:
        return [from_json(v, depth + 1) for v in obj]
    if kind is not dict or len(obj) != 1:
        raise WireError("malformed value")
    ((tag, body),) = obj.items()
    try:
        if tag == "t":
            return tuple(from_json(v, depth + 1) for v in _items(body))
        if tag == "d":
            out = {}
            for pair in _items(body):
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("malformed dict item")
                out[from_json(pair[0], depth + 1)] = from_json(pair[1], depth + 1)
            return out
        if tag == "s":
            return {from_json(v, depth + 1) for v in _items(body)}
        if tag == "f":
            return frozenset(from_json(v, depth + 1) for v in _items(body))
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "c" and type(body) is list and len(body) == 2:
            return complex(_number(body[0]), _number(body[1]))
        if tag == "F":
            return _special(body)
        if tag == "y" and type(body) is str and body in _TYPES:
            return _TYPES[body]
    except TypeError as err:  # an unhashable key or set member
        raise WireError(f"malformed value: {err}") from None
    except ValueError as err:  # bad hex, say
        raise WireError(f"malformed value: {err}") from None
    raise WireError("malformed value")


def _reject_constant(name: str) -> Any:
    raise WireError(f"non-standard JSON constant {name}")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"an integer over {MAX_INT_DIGITS} digits")
    return int(text)


class _Strict:
    """The settings `_json.make_scanner` reads: strict strings, plain dicts, bounded integers, no NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = staticmethod(_parse_int)
    parse_constant = staticmethod(_reject_constant)
    memo: dict = {}


if _json is not None:
    _scan = _json.make_scanner(_Strict())
    _encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)


def _loads(text: str) -> Any:
    if _json is None:
        import json

        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    try:
        obj, end = _scan(text, 0)
    except StopIteration:
        raise WireError("not a valid message: no JSON value") from None
    if end != len(text):
        raise WireError("not a valid message: text after the value")
    return obj


def _dumps(obj: Any) -> str:
    if _json is None:
        import json

        return json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return "".join(_encode(obj, 0))


def parse(data: bytes) -> Any:
    """Strict JSON (no NaN/Infinity literals, bounded integers) from bytes; `WireError` if malformed."""
    try:
        return _loads(data.decode("utf-8"))
    except WireError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError, MemoryError) as err:
        raise WireError(f"not a valid message: {type(err).__name__}") from None


def dumps(obj: Any, limit: int = MAX_BYTES) -> bytes:
    """Compact JSON bytes of an already-encoded form; `WireError` if larger than `limit`."""
    try:
        data = _dumps(obj).encode("utf-8")
    except (ValueError, RecursionError, TypeError) as err:
        raise WireError(f"cannot encode: {type(err).__name__}") from None
    if len(data) > limit:
        raise WireError(f"larger than {limit} bytes")
    return data


def encode_value(value: Any) -> str:
    """A plain value as compact tagged JSON text (the form inside messages)."""
    return dumps(to_json(value)).decode("utf-8")


def decode_value(text: str | bytes) -> Any:
    """The plain value of `encode_value`'s text."""
    return from_json(parse(text.encode("utf-8") if isinstance(text, str) else text))


def write_frame(fd: int, message: dict, limit: int = MAX_BYTES + FRAME_OVERHEAD) -> None:
    """Write one message (a dict of already-encoded fields) as a 4-byte length and its JSON."""
    data = dumps(message, limit)
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            raise WireError("the channel closed" if left == n and not chunks else "a message cut short")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_BYTES + FRAME_OVERHEAD) -> dict:
    """Read one message: `WireError` at end of input, for a declared length over `limit` (nothing more is
    read: the channel is then unusable) or for a payload that is not a JSON object."""
    size = int.from_bytes(_read_exactly(fd, 4), "big")
    if size > limit:
        raise WireError(f"a message of {size} bytes (limit {limit})")
    message = parse(_read_exactly(fd, size))
    if type(message) is not dict:
        raise WireError("a message that is not an object")
    return message
