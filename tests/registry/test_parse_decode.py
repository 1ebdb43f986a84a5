"""The body's decoding in ``parse_json_object``: the C UTF-8 decoder when there is no BOM,
the surrogate check on that text. Every body gets what the old way (``utf-8-sig`` for every
body, the surrogate check on the bytes, the encoding detected twice) gave it: the same
object, or the same error with the same message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core import strict_json
from LLM_Mesh.errors import InvalidRequest
from LLM_Mesh.registry.extensions import EXTENSION_FIELDS, NONE, read_extensions
from LLM_Mesh.registry.parse import parse_json_object

BOM = b"\xef\xbb\xbf"
BODIES = [
    b'{"model":"m","messages":[{"role":"user","content":"Say hi"}]}',
    '{"model":"m","prompt":"héllo ✓ 😀"}'.encode(),
    b'{"model":"m","prompt":"\\ud83d\\ude00 a pair"}',
    b'{"model":"m","prompt":"\\ud800 alone"}',
    b'{"model":"m","prompt":"\\uDC00 alone"}',
    b'{"model":"m","prompt":"bad \xff byte"}',
    b'{"model":"m","prompt":"cut \xe2\x82"}',
    b'{"model":"m","prompt":"ok"} extra',
    b'{"model":"m","x":NaN}',
    b'["not", "an object"]',
    b"\xef\xbb",  # a BOM's start only
]


def old_way(raw: bytes) -> dict[str, Any]:
    """parse_json_object's decoding before 2026-12-05 (branch admit26), the rest the same."""
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        raise InvalidRequest("the request body must be UTF-8 JSON")
    try:
        body = strict_json.loads(raw.decode("utf-8-sig"))
        strict_json.refuse_lone_surrogates(raw, body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def outcome(f: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", f(raw)
    except InvalidRequest as exc:
        return "refused", str(exc)


@pytest.mark.parametrize("raw", BODIES + [BOM + b for b in BODIES])
def test_a_body_is_read_as_the_utf_8_sig_codec_read_it(raw: bytes) -> None:
    assert outcome(parse_json_object, raw) == outcome(old_way, raw)


@pytest.mark.parametrize("field", EXTENSION_FIELDS)
def test_any_extension_field_makes_extensions_present(field: str) -> None:
    bools = {"strict_regions": True, "trusted_only": True, "allow_prompt_keeping": True}
    value: Any = {"mesh_wait_s": 1, **bools}.get(field, [])
    assert read_extensions({"model": "m", field: value}, None).present


def test_a_body_without_extension_fields_has_none() -> None:
    assert read_extensions({"model": "m", "messages": [], "user": "x"}, None) is NONE
