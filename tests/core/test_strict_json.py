"""core/strict_json.py: RFC 8259 JSON in and out (no NaN, Infinity or 1e400)."""

from __future__ import annotations

import json
import math

import pytest

from LLM_Mesh.core import strict_json


@pytest.mark.parametrize(
    "text",
    ['{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":1e400}', '{"a":-1e400}',
     '{"a":1.5e309}'],
)  # fmt: skip
def test_non_finite_numbers_are_refused(text: str) -> None:
    assert not math.isfinite(json.loads(text)["a"])  # what Python's json reads
    with pytest.raises(ValueError):
        strict_json.loads(text)


def test_finite_numbers_and_bytes_are_read() -> None:
    obj = strict_json.loads(b'{"a":1e300,"b":-2.5,"c":10000000000000000000000,"d":"NaN"}')
    assert obj == {"a": 1e300, "b": -2.5, "c": 10**22, "d": "NaN"}


@pytest.mark.parametrize("data", [b"[1]", b'"x"', b"3", b"\xff{}"])
def test_loads_object_wants_one_utf8_object(data: bytes) -> None:
    with pytest.raises(ValueError):
        strict_json.loads_object(data)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_dumps_never_writes_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        strict_json.dumps({"a": value})
    assert strict_json.dumps({"a": 1.5, "é": "x"}) == '{"a":1.5,"é":"x"}'.encode()


@pytest.mark.parametrize(
    "obj",
    [{"a": [1, 2.5, None, True], "é": 'ü\n"', "n": {"x": -0.0}}, [], "x", 10**22, {"": {}}],
)
def test_dumps_writes_what_json_dumps_writes(obj: object) -> None:
    # one shared encoder (not one a call): the same text, call after call, and after a
    # refused value
    want = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    assert strict_json.dumps(obj) == want
    with pytest.raises(ValueError):
        strict_json.dumps([math.nan])
    assert strict_json.dumps(obj) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NaN", "NaN is not JSON"),
        ('{"a": -Infinity}', "-Infinity is not JSON"),
        ("1e400", "1e400 is past a float's range"),
        ("-" + "9" * 50 + ".0e400", "-" + "9" * 39 + " is past a float's range"),
    ],
)
def test_a_refused_number_is_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        strict_json.loads(text)
    assert str(refused.value) == message


def test_loads_object_says_when_the_json_is_no_object() -> None:
    with pytest.raises(ValueError) as refused:
        strict_json.loads_object("[1]")
    assert str(refused.value) == "not a JSON object"


@pytest.mark.parametrize(
    "raw",
    [r'"\ud800"', r'["ok", "a\uDFFFb"]', r'{"\udbff": 1}', r'"\ude00\ud83d"', r'"\ud83d\u0041"'],
)
def test_a_lone_surrogate_escape_is_refused(raw: str) -> None:
    obj = strict_json.loads(raw)
    for data in (raw, raw.encode()):
        with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
            strict_json.refuse_lone_surrogates(data, obj)


@pytest.mark.parametrize(
    "raw", [r'"\ud83d\ude00"', r'"\\ud800"', '"plain"', r'"\u00e9 \uD83D\uDE00"']
)
def test_a_surrogate_pair_or_an_escaped_backslash_passes(raw: str) -> None:
    obj = strict_json.loads(raw)
    strict_json.refuse_lone_surrogates(raw, obj)
    strict_json.refuse_lone_surrogates(raw.encode(), obj)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16", "utf-32-be"])
def test_a_lone_surrogate_in_a_body_in_utf_16_or_32_is_refused(codec: str) -> None:
    """Review 14: ``json.loads`` of bytes (the node's parser) reads UTF-16 and UTF-32 too,
    in which ``\\ud800`` is not the bytes ``\\ud`` (nor is a raw surrogate code unit an
    escape at all): the shortcut let both through to the engine's tokenizer."""
    import json

    for text in (r'{"prompt": "\ud800"}', '{"prompt": "\ud800"}'):
        raw = text.encode(codec, "surrogatepass")
        obj = json.loads(raw)
        with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
            strict_json.refuse_lone_surrogates(raw, obj)


def test_finite_number_reads_a_peers_optional_number_or_none() -> None:
    finite_number = strict_json.finite_number
    assert finite_number(0.5) == 0.5 and finite_number(3) == 3.0
    assert finite_number(10**400) is None  # float() raised OverflowError
    assert finite_number(float("inf")) is None and finite_number(float("nan")) is None
    assert finite_number(True) is None and finite_number("1") is None
    assert finite_number(None) is None


def test_loads_object_gives_the_object_and_refuses_anything_else() -> None:
    assert strict_json.loads_object(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    assert strict_json.loads_object('{"b": {}}') == {"b": {}}
    for other in ("[1]", "1", '"x"', "null"):
        with pytest.raises(ValueError) as exc:
            strict_json.loads_object(other)
        assert str(exc.value) == "not a JSON object"


def test_the_lone_surrogate_refusal_in_its_words() -> None:
    """What a client's 400 says (mut34: the tests matched a fragment)."""
    raw = '{"content": "a\\ud800b"}'
    with pytest.raises(ValueError) as exc:
        strict_json.refuse_lone_surrogates(raw, json.loads(raw))
    assert str(exc.value) == (
        "a string holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff without its "
        "pair): not Unicode text"
    )


def test_encoding_is_json_detect_encodings_answer() -> None:
    """``strict_json.encoding`` gives ``json.detect_encoding``'s answer for every body: each
    of the first four bytes drawn from those its rules look at (0, a BOM's, ``{``, another),
    at every length 0 to 5, and for real bodies (perf38: its fast path is ``{`` and a byte
    that is not 0)."""
    import codecs
    import itertools

    encoding = strict_json.encoding
    alphabet = b"\x00\xff\xfe\xef\xbb\xbf{ a"
    bodies: list[bytes] = [b"{}", b'{"a":1}', json.dumps({"x": "é"}).encode()]
    for n in range(6):
        bodies += (bytes(t) for t in itertools.product(alphabet, repeat=min(n, 4)))
        bodies += (bytes(t) + b"{" for t in itertools.product(alphabet, repeat=min(n, 3)))
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        bodies.append('{"a": 1}'.encode(codec))
    bodies.append(codecs.BOM_UTF8 + b"{}")
    fast = 0
    for body in bodies:
        assert encoding(body) == json.detect_encoding(body), body
        fast += body[:1] == b"{" and body[1:2] != b"\x00"
    assert fast > 100  # the fast path itself was compared, not only the fallback
