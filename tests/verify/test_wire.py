"""The wire between a program and its tests: plain values cross with their exact types, within bounds;
anything else, and any malformed, oversized or cut-short message, is a WireError and nothing worse."""

from __future__ import annotations

import collections
import json
import os
import random

import pytest

from distill.verify.wire import (
    FRAME_OVERHEAD,
    MAX_BYTES,
    MAX_DEPTH,
    NotPlain,
    WireError,
    decode_value,
    encode_value,
    from_json,
    parse,
    read_frame,
    to_json,
    write_frame,
)

PLAIN = [None, True, False, 0, -7, 2 ** 100, 0.5, -0.0, float("inf"), 1e308, complex(1, -2), "", "é\ud800x",
         b"\x00\xff", [], (), {}, set(), frozenset(), [1, (2, [3])], {(1, "a"): {None: b"x"}, 1.5: [set()]},
         {frozenset({1}): (True,)}, int, str, type(None)]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_cross_with_their_exact_types(value: object) -> None:
    back = decode_value(encode_value(value))
    assert back == value or (back != back and value != value)

    def types(v: object) -> object:
        if isinstance(v, (list, tuple, set, frozenset)):
            return (type(v), sorted(map(repr, map(types, v))))
        if isinstance(v, dict):
            return (dict, sorted(repr((types(k), types(x))) for k, x in v.items()))
        return type(v)

    assert types(back) == types(value)


def test_nan_crosses() -> None:
    assert str(decode_value(encode_value(float("nan")))) == "nan"


def test_collections_arrive_as_dicts() -> None:
    for value in (collections.Counter("aab"), collections.defaultdict(int, a=1), collections.OrderedDict(b=2)):
        back = decode_value(encode_value(value))
        assert type(back) is dict and back == dict(value)


class Int(int):
    pass


@pytest.mark.parametrize("value", [Int(1), [Int(1)], object(), len, (x for x in ()), type("T", (), {}),
                                   collections.UserDict(), range(3), memoryview(b"x"), bytearray(b"x"), Ellipsis])
def test_anything_else_does_not_cross(value: object) -> None:
    with pytest.raises(NotPlain):
        to_json(value)


def test_bounds() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert decode_value(encode_value(deep)) == deep
    with pytest.raises(WireError):
        to_json([deep])
    with pytest.raises(WireError):
        from_json(json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
    assert decode_value(encode_value(10 ** 4299)) == 10 ** 4299
    with pytest.raises(WireError):
        to_json(10 ** 4300)
    with pytest.raises(WireError):
        parse(b"1" * 4301)
    with pytest.raises(WireError):
        encode_value("x" * MAX_BYTES)


@pytest.mark.parametrize("text", [b"", b"nan", b"NaN", b"[1,", b'{"t": 1}', b'{"d": [[1]]}', b'{"d": [[[1], 2]]}',
                                  b'{"s": [[1]]}', b'{"b": "zz"}', b'{"c": [1]}', b'{"F": "x"}', b'{"y": "object"}',
                                  b'{"t": [1], "d": []}', b'{"q": 1}', b"\xff", b"[" * 100_000, b" 1", b"1 x",
                                  b'"\x01"'])
def test_malformed_values_are_wire_errors(text: bytes) -> None:
    with pytest.raises(WireError):
        from_json(parse(text))


def test_random_mutations_only_ever_raise_wire_errors() -> None:
    rng = random.Random(13)
    seeds = [encode_value(v).encode() for v in PLAIN if v is not None]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(3)
            if op == 0:
                data[at:at] = bytes([rng.randrange(256)])
            elif op == 1 and data:
                del data[min(at, len(data) - 1)]
            elif data:
                data[min(at, len(data) - 1)] = rng.choice(b'[]{}",:0123456789-.eEtfnsdbcyFT\\u')
        try:
            from_json(parse(bytes(data)))
        except WireError:
            pass


def test_frames() -> None:
    r, w = os.pipe()
    try:
        write_frame(w, {"value": to_json((1, [2]))})
        os.write(w, (10 ** 9).to_bytes(4, "big"))  # declared far over the limit: refused unread
        assert decode_value(json.dumps(read_frame(r)["value"])) == (1, [2])
        with pytest.raises(WireError, match="limit"):
            read_frame(r)
        os.write(w, (5).to_bytes(4, "big") + b"[1,2]")
        with pytest.raises(WireError, match="not an object"):
            read_frame(r)
        os.write(w, (9).to_bytes(4, "big") + b"{}")
        os.close(w)
        w = -1
        with pytest.raises(WireError, match="cut short"):
            read_frame(r)
        with pytest.raises(WireError, match="closed"):
            read_frame(r)
        spare_r, spare_w = os.pipe()
        try:
            with pytest.raises(WireError):  # refused before a byte is written
                write_frame(spare_w, {"value": "x" * (MAX_BYTES + FRAME_OVERHEAD)})
        finally:
            os.close(spare_r)
            os.close(spare_w)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
