"""JSON as RFC 8259 has it, for what a node sends and what the gateway writes.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON) and reads a
number past a float's range (``1e400``) as ``inf``; ``json.dumps`` then writes
``Infinity``, which clients' parsers refuse. The gateway reads a node's JSON with
:func:`loads` (those refused: ``ValueError``, a node protocol error) and writes with
:func:`dumps` (``allow_nan=False``: it can never emit them).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "encoding", "finite_number", "loads", "loads_object", "refuse_lone_surrogates"]

_SEP = (",", ":")


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is past a float's range")
    return value


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_refuse)
# one encoder for every call: ``json.dumps`` with any non-default argument builds a new
# ``JSONEncoder`` per call; the text is the same
_ENCODER = json.JSONEncoder(separators=_SEP, ensure_ascii=False, allow_nan=False)
_TEXT = json.JSONEncoder(ensure_ascii=False, check_circular=False)  # refuse_lone_surrogates


def encoding(data: bytes) -> str:
    """``json.detect_encoding(data)``, the same answer: at once for what a JSON object in
    UTF-8 begins with (``{`` then a byte that is not 0: no byte-order mark and no UTF-16 or
    UTF-32 text begins so), else the standard library's Python function (3 of them a
    request on the gateway's path, ~2 µs each: perf38)."""
    if data[:1] == b"{" and data[1:2] != b"\x00":
        return "utf-8"
    return json.detect_encoding(data)


def loads(data: str | bytes) -> Any:
    """``data`` (UTF-8 when bytes) as JSON, refusing non-finite numbers: ``ValueError``
    (``RecursionError`` nested past the parser's limit)."""
    text = data.decode() if isinstance(data, bytes) else data
    return _DECODER.decode(text)


def loads_object(data: str | bytes) -> dict[str, Any]:
    """:func:`loads` where only a JSON object will do (else ``ValueError``)."""
    obj = loads(data)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; a non-finite float is a ``ValueError``, never ``Infinity``."""
    return _ENCODER.encode(obj).encode()


def refuse_lone_surrogates(data: str | bytes, obj: Any) -> None:
    """``ValueError`` when ``obj`` (parsed from ``data``) holds a string with a lone UTF-16
    surrogate: a ``\\ud800``-``\\udfff`` escape without its pair, which is no Unicode
    character (RFC 7493, I-JSON: none). Nothing can write it as UTF-8 again: the gateway
    re-encoding a request, a node's tokenizer (its engine failed: a 500 blamed on the
    node). Only such an escape makes one (UTF-8 text cannot hold a surrogate), so the
    strings are checked only when ``data`` has ``\\ud`` / ``\\uD`` in it (an escaped emoji
    is a pair, and passes): otherwise two substring searches per body."""
    if isinstance(data, bytes):
        # ``json.loads`` of bytes reads UTF-16 and UTF-32 too: neither spells ``\\ud`` so,
        # and a surrogate code unit in them is no escape: such a body is always checked
        utf8 = encoding(data) in ("utf-8", "utf-8-sig")  # a few bytes looked at
        if utf8 and b"\\ud" not in data and b"\\uD" not in data:
            return
    elif "\\ud" not in data and "\\uD" not in data:
        return
    try:
        _TEXT.encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "a string holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff without its "
            "pair): not Unicode text"
        ) from None


def finite_number(value: Any) -> float | None:
    """A number a peer sent (an optional field it may leave out) as a finite float, or
    ``None``: not a number (``true`` is none), or past a float's range. An integer of 400
    digits is valid JSON and a Python ``int``: ``float()`` of it raised ``OverflowError``
    (a node's heartbeat ``uptime``, ``service_s`` or ``load_time_s``: found 2026-12-05)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
