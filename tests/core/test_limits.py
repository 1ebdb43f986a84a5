"""Request limits (core/limits.py): each limit at its boundary and one past it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core.limits import (
    GATEWAY_MARGIN_BYTES,
    RequestLimits,
    Violation,
    check_body,
    check_body_size,
    check_depth,
    grown_past,
    json_depth,
    json_shape,
    limit_error,
    nesting_violation,
)
from LLM_Mesh.errors import LimitExceeded, PayloadTooLarge

LIMITS = RequestLimits()


def nested(depth: int) -> bytes:
    """A JSON object whose arrays/objects nest exactly ``depth`` deep."""
    leaf = b'1, "]]"' if depth > 1 else b"1"
    return b'{"a": ' + b"[" * (depth - 1) + leaf + b"]" * (depth - 1) + b"}"


def test_defaults_are_the_documented_ones() -> None:
    assert (
        RequestLimits(
            max_body_bytes=1024 * 1024,
            max_json_depth=32,
            max_json_containers=20_000,
            max_messages=512,
            max_content_chars=512 * 1024,
            max_n=1,
            max_stop=4,
            max_stop_chars=256,
        )
        == LIMITS
    )


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_limits_must_be_whole_numbers_at_least_one(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_n"):
        RequestLimits(max_n=bad)


def test_body_size_boundary() -> None:
    lim = RequestLimits(max_body_bytes=100)
    assert check_body_size(100, lim) is None
    v = check_body_size(101, lim)
    assert v is not None
    assert (v.limit, v.status, v.allowed, v.actual, v.param) == (
        "max_body_bytes",
        413,
        100,
        101,
        None,
    )
    assert "max_body_bytes" in v.message


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'"[[[["', 0),
        (b"{}", 1),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "]]]{{{", "b": [["\\"[["]]}', 3),  # brackets in strings, escaped quotes
        (b'{"a": "\\\\", "b": [[1]]}', 3),  # an escaped backslash before a closing quote
        (b'{"a": "\\\\\\"[", "b": {}}', 2),
        (b"[[], [[]], [[[]]]]", 4),
        (json.dumps({"a": "\u00e9[\u4e2d{"}, ensure_ascii=False).encode(), 1),
    ],
)
def test_json_depth_counts_containers_not_string_content(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 33, 10_000])
def test_json_depth_of_deep_and_mixed_shapes(depth: int) -> None:
    assert json_depth(b"[" * depth + b"]" * depth) == depth
    assert json_depth(b"[[]," + nested(depth) + b",{}]") == depth + 1
    text = b'{"s": "[[[[[[[[", "x": ' + nested(depth) + b"}"
    assert json_depth(text) == depth + 1
    if depth < 500:
        json.loads(text)  # the shapes are valid JSON


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_json_depth_reads_the_encodings_the_parser_reads(encoding: str) -> None:
    text = '{"s": "\u225b[[[", "a": [[{"b": []}]]}'  # U+225B is the bytes [ and " in UTF-16
    assert json_depth(text.encode(encoding)) == json_depth(text.encode()) == 5
    assert json_depth(b"\x00\xd8\x00") == 0  # undecodable: not JSON, no error here


def test_depth_boundary() -> None:
    lim = RequestLimits(max_json_depth=5)
    assert check_depth(nested(5), lim) is None
    v = check_depth(nested(6), lim)
    assert v is not None and (v.limit, v.status, v.allowed) == ("max_json_depth", 400, 5)
    assert nesting_violation(lim).limit == "max_json_depth"


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"a": [[[[1]]]]}',
        '{"s": "[[[[[[[[", "a": [[]]}',
        '{"s": "\u225b[[[", "a": [[{"b": []}]]}',
        "[" * 6 + "]" * 6,
        '[{"a": {"b": [{}]}}, [[]]]',
        "[[" + "{}," * 10 + "[]]]",
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_the_bracket_count_shortcut_agrees_with_the_walk(text: str, encoding: str) -> None:
    """A body with few brackets skips the walk; the verdict is the walk's either way."""
    raw = text.encode(encoding)
    for limit in range(1, 9):
        lim = RequestLimits(max_json_depth=limit)
        v = check_depth(raw, lim)
        assert (v is None) == (json_depth(raw) <= limit), (text, encoding, limit)


@pytest.mark.parametrize(
    ("text", "containers"),
    [
        (b"1", 0),
        (b'"[[{{"', 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "]]]{{{", "b": [["\\"[["]]}', 3),  # brackets in strings are not counted
        (b"[[], [[]], [[[]]]]", 7),
        (b"[" + b",".join([b"[]"] * 1000) + b"]", 1001),
    ],
)
def test_json_shape_counts_every_array_and_object_outside_strings(
    text: bytes, containers: int
) -> None:
    assert json_shape(text)[1] == containers
    assert json_shape(text)[0] == json_depth(text)
    json.loads(text)  # the shapes are valid JSON


def test_containers_boundary_and_the_shortcut() -> None:
    """At the limit: allowed; one past it: refused naming the limit and both numbers. A
    body with more brackets than the limit, all inside strings, is allowed (the walk, not
    the byte count, decides)."""
    lim = RequestLimits(max_json_containers=10)
    at = b"[" + b",".join([b"{}"] * 9) + b"]"
    assert json_shape(at)[1] == 10 and check_depth(at, lim) is None
    over = b"[" + b",".join([b"{}"] * 10) + b"]"
    v = check_depth(over, lim)
    assert v is not None
    assert (v.limit, v.param, v.status, v.allowed, v.actual) == (
        "max_json_containers", None, 400, 10, 11,
    )  # fmt: skip
    assert "11 JSON arrays and objects" in v.message and "max_json_containers" in v.message
    in_strings = json.dumps({"code": "[" * 50 + "{" * 50}).encode()
    assert check_depth(in_strings, lim) is None
    # nesting past its limit is named first, whatever the count
    v = check_depth(b"[" * 40 + b"]" * 40, lim)
    assert v is not None and v.limit == "max_json_depth"


def chat(messages: int = 1, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": content} for _ in range(messages)],
        **extra,
    }


def only(body: dict[str, Any], lim: RequestLimits) -> Violation:
    v = check_body(body, lim)
    assert v is not None
    return v


def test_message_count_boundary() -> None:
    lim = RequestLimits(max_messages=3)
    assert check_body(chat(3), lim) is None
    v = only(chat(4), lim)
    assert (v.limit, v.param, v.allowed, v.actual) == ("max_messages", "messages", 3, 4)


def test_content_chars_boundary_over_all_messages_and_text_parts() -> None:
    lim = RequestLimits(max_content_chars=10)
    assert check_body(chat(2, "x" * 5), lim) is None
    v = only(chat(1, "x" * 11), lim)
    assert (v.limit, v.param, v.allowed, v.actual) == ("max_content_chars", "messages", 10, 11)
    parts = {"role": "user", "content": [{"type": "text", "text": "x" * 6}] * 2}
    assert only({"model": "m", "messages": [parts]}, lim).actual == 12


def test_prompt_chars_boundary() -> None:
    lim = RequestLimits(max_content_chars=10)
    assert check_body({"model": "m", "prompt": "x" * 10}, lim) is None
    v = only({"model": "m", "prompt": ["x" * 11]}, lim)
    assert (v.limit, v.param) == ("max_content_chars", "prompt")


def test_n_boundary() -> None:
    lim = RequestLimits(max_n=2)
    assert check_body(chat(n=2), lim) is None
    v = only(chat(n=3), lim)
    assert (v.limit, v.param, v.allowed, v.actual) == ("max_n", "n", 2, 3)


def test_stop_count_boundary() -> None:
    assert check_body(chat(stop=["a"] * 4), LIMITS) is None
    v = only(chat(stop=["a"] * 5), LIMITS)
    assert (v.limit, v.param, v.allowed, v.actual) == ("max_stop", "stop", 4, 5)


def test_stop_length_boundary_single_string_too() -> None:
    lim = RequestLimits(max_stop_chars=3)
    assert check_body(chat(stop=["abc", "x"]), lim) is None
    assert check_body(chat(stop="abc"), lim) is None
    v = only(chat(stop="abcd"), lim)
    assert (v.limit, v.param, v.allowed, v.actual) == ("max_stop_chars", "stop", 3, 4)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": "not a list", "n": "2", "stop": 5},
        {"model": "m", "messages": [1, None, {"content": 5}], "stop": [1, 2]},
        {"model": "m", "prompt": 3, "n": True},
    ],
)
def test_wrong_types_are_left_to_the_request_model(body: dict[str, Any]) -> None:
    assert check_body(body, LIMITS) is None


def test_limit_error_names_the_limit_in_openai_shape() -> None:
    err = limit_error(only(chat(n=2), LIMITS))
    assert type(err) is LimitExceeded
    assert err.to_openai()["error"] == {
        "message": "n=2; the limit is 1 (max_n)",
        "type": "invalid_request_error",
        "param": "n",
        "code": "limit_exceeded",
        "limit": "max_n",
        "allowed": 1,
    }
    big = check_body_size(LIMITS.max_body_bytes + 1, LIMITS)
    assert big is not None
    assert type(limit_error(big)) is PayloadTooLarge and limit_error(big).status == 413


def test_1_mib_hostile_bodies_are_refused_by_the_byte_checks() -> None:
    """Bodies near 1 MiB that would make the parser recurse or allocate half a million
    containers are refused before parsing; a 1 MiB body of plain messages is refused by the
    counts. (How long each takes: benchmarks/bench_limits.py.)"""
    deep_chains = b"[" + b",".join([b"[" * 30 + b"]" * 30] * 16_000) + b"]"
    v = check_depth(deep_chains, LIMITS)
    assert v is not None and v.limit == "max_json_containers" and v.actual == 480_001
    v = check_depth(b"[" * 500_000 + b"]" * 500_000, LIMITS)
    assert v is not None and v.limit == "max_json_depth"
    many = json.dumps(chat(20_000, "hello there")).encode()
    assert check_depth(many, LIMITS) is not None  # 20,001 objects and 1 array
    v = check_body(json.loads(many), LIMITS)
    assert v is not None and v.limit == "max_messages"


def _depth_of(value: Any) -> int:
    """The nesting of a parsed JSON value, the parser's way (the reference for json_shape)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth_of, value), default=0)
    return 0


def _containers_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(map(_containers_of, value.values()))
    if isinstance(value, list):
        return 1 + sum(map(_containers_of, value))
    return 0


@pytest.mark.parametrize(
    "text",
    [
        "[[[[]]], [[[[[[]]]]]], []]",  # siblings of other depths: runs of unequal length
        '{"a": [[[1]], [[[[2]]]]], "b": {"c": [[]]}}',
        "[[[]], [[[]]], [[[[]]]], [[[[[]]]]]]",
        "[[[[[[[]]]]]], [[[]]], [[[[[]]]]]]",
        '[[["\\\\", [[1]]]]]',  # an escaped backslash ends a string: its quote is real
        '["\\\\", [[1]]]',
        '["\\"[[[", [[1]]]',  # an escaped quote does not
    ],
)
def test_json_shape_agrees_with_the_parser_on_uneven_shapes(text: str) -> None:
    """Depth and container count as the parsed value has them, for shapes whose bracket
    runs differ in length (the running count of what two rounds leave) and for strings
    that end in an escaped backslash."""
    value = json.loads(text)
    assert json_shape(text.encode()) == (_depth_of(value), _containers_of(value))


def test_json_shape_of_text_that_does_not_decode_is_zero() -> None:
    """A UTF-16 byte order mark with an odd byte count: not JSON, the parser says so."""
    assert json_shape(b"\xff\xfe[\x00[") == (0, 0)


def test_containers_at_the_limit_past_the_byte_count_shortcut() -> None:
    """Exactly max_json_containers, with brackets in a string so the walk decides: allowed."""
    lim = RequestLimits(max_json_containers=10)
    at = b"[" + b",".join([b"{}"] * 9) + b', "[[[["]'
    assert json_shape(at) == (2, 10) and check_depth(at, lim) is None


def test_the_limits_messages_word_for_word() -> None:
    lim = RequestLimits(
        max_body_bytes=100, max_json_depth=5, max_messages=3, max_content_chars=10,
        max_stop=2, max_stop_chars=4,
    )  # fmt: skip
    v = check_body_size(101, lim)
    assert v is not None and v.message == (
        "the request body is 101 bytes; the limit is 100 bytes (max_body_bytes)"
    )
    v = check_depth(nested(7), lim)
    assert v is not None and (v.allowed, v.actual) == (5, 7)
    assert (
        v.message == "the request body nests arrays and objects more than 5 deep (max_json_depth)"
    )
    v = nesting_violation(lim)
    assert (v.limit, v.param, v.allowed, v.actual, v.message) == (
        "max_json_depth", None, 5, 6,
        "the request body nests arrays and objects more than 5 deep (max_json_depth)",
    )  # fmt: skip
    assert only(chat(4), lim).message == "the request has 4 messages; the limit is 3 (max_messages)"
    assert only(chat(1, "x" * 11), lim).message == (
        "the messages hold 11 characters; the limit is 10 (max_content_chars)"
    )
    assert only({"prompt": "x" * 12}, lim).message == (
        "the prompt hold 12 characters; the limit is 10 (max_content_chars)"
    )
    assert only(chat(stop=["a", "b", "c"]), lim).message == (
        "stop has 3 sequences; the limit is 2 (max_stop)"
    )
    assert only(chat(stop="abcde"), lim).message == (
        "a stop sequence has 5 characters; the limit is 4 (max_stop_chars)"
    )


def test_content_parts_are_counted_as_the_gateway_reads_them() -> None:
    """A part's non-string ``text`` counts as its str(); a part that is no object (a string
    that happens to contain "text") and a message without content count nothing."""
    lim = RequestLimits(max_content_chars=5)
    body = chat(1)
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": 12345}]}]
    assert check_body(body, lim) is None
    body["messages"][0]["content"][0]["text"] = 123456
    assert only(body, lim).actual == 6
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": [1, 2]}]}]
    assert only(body, lim).actual == len("[1, 2]")
    body["messages"] = [
        {"role": "user", "content": ["some text", ["text"]]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "x" * 5},
    ]
    assert check_body(body, lim) is None


def test_a_body_within_the_margin_of_the_limit_may_have_grown_past_it() -> None:
    """A node's 413 is the gateway's own doing only for a body within the margin of its
    limit: more than ``limit - margin`` bytes, not exactly that (mut34: no core test)."""
    assert GATEWAY_MARGIN_BYTES == 1024
    limit = 1_048_576
    assert not grown_past(limit - 1024, limit)
    assert grown_past(limit - 1023, limit)
    assert grown_past(limit, limit) and grown_past(limit + 5, limit)
    assert not grown_past(90, 100, margin=10) and grown_past(91, 100, margin=10)
