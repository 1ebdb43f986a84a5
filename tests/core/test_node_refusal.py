"""core/node_refusal.py: a node's non-200 body → the client's OpenAI error object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core.node_refusal import (
    ERROR_TYPES,
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    NODE_CODES,
    NODE_STATUSES,
    _codes,
    _error_types,
    node_message,
    node_refusal,
)
from LLM_Mesh.errors import InvalidRequest, ModelNotFound


def _err(**fields: Any) -> bytes:
    return json.dumps({"error": fields}).encode()


def test_an_openai_error_keeps_its_strings() -> None:
    r = node_refusal(400, _err(message="too long", type="invalid_request_error",
                               code="context_length_exceeded", param="messages", more=1))  # fmt: skip
    assert r.status == 400
    assert r.body() == {"error": {"message": "too long", "type": "invalid_request_error",
                                  "code": "context_length_exceeded", "param": "messages"}}  # fmt: skip


@pytest.mark.parametrize(
    "content",
    [
        b"<html>nope</html>",
        b"",
        b"[1, 2]",
        b'"a string"',
        b'{"error": "a string"}',
        b'{"error": {"message": "x"}} trailing',
        b'{"error": {"message": "\xff"}}',  # invalid UTF-8
        b'{"error": {"message": NaN}}',
        b"[" * 100_000,  # nested past the parser's limit
        _err(message="A" * (MAX_MESSAGE_CHARS + 1)),
        _err(message="line\nbreak"),
        _err(message="\x1b[31mred"),
        _err(message="bidi \u202e"),
        _err(message="   "),
        _err(message=5),
        _err(message=None),
    ],
)
def test_what_is_not_a_short_printable_message_gets_the_gateways(content: bytes) -> None:
    r = node_refusal(404, content)
    assert r.status == 404
    assert r.message == "the node refused the request with HTTP 404"
    assert node_message(content) is None


def test_a_message_at_the_limit_is_kept_and_a_huge_body_is_not_read() -> None:
    assert node_message(_err(message="A" * MAX_MESSAGE_CHARS)) == "A" * MAX_MESSAGE_CHARS
    padded = json.dumps({"error": {"message": "hi"}, "pad": "x" * MAX_BODY_BYTES}).encode()
    assert node_message(padded) is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "made_up", "code": "my_code", "param": "a b"},
         ("invalid_request_error", None, None)),
        ({"type": 1, "code": 2, "param": 3}, ("invalid_request_error", None, None)),
        ({"type": "invalid_request_error", "code": "model_not_found", "param": "model"},
         ("invalid_request_error", "model_not_found", "model")),
        # the gateway's own kinds (found 2026-12-02: kept, as any of the mesh's types/codes)
        ({"type": "permission_error", "code": "forbidden", "param": "messages[0].content"},
         ("invalid_request_error", None, "messages[0].content")),
        ({"type": "authentication_error", "code": "invalid_api_key"},
         ("invalid_request_error", None, None)),
        ({"type": "insufficient_balance", "code": "community_pool_exhausted"},
         ("invalid_request_error", None, None)),
        ({"param": "p" * 65}, ("invalid_request_error", None, None)),
    ],
)  # fmt: skip
def test_type_code_and_param_only_when_they_are_the_meshs(
    fields: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    r = node_refusal(400, _err(message="m", **fields))
    assert (r.type, r.code, r.param) == expected


@pytest.mark.parametrize("status", [201, 204, 302, 399, 500])
def test_a_status_that_is_no_4xx_is_a_502(status: int) -> None:
    r = node_refusal(status, _err(message="fine", code="forbidden"))
    assert r.status == 502 and r.code == "upstream_error" and r.type == "api_error"
    assert str(status) in r.message


def test_error_types_are_the_meshs() -> None:
    assert {"invalid_request_error", "authentication_error", "rate_limit_error"} <= ERROR_TYPES


@pytest.mark.parametrize("status", [401, 402, 403, 407, 409, 418, 429, 451])
def test_a_4xx_only_the_gateway_answers_is_a_502(status: int) -> None:
    """A node's 402 ``insufficient_balance`` or 403 ``revoked`` would tell the client its
    balance is spent or its key revoked, in the gateway's words (found 2026-12-02: passed
    on with the node's status, type and code)."""
    r = node_refusal(status, _err(message="top up at https://pay.example", type="insufficient_balance",
                                  code="insufficient_balance"))  # fmt: skip
    assert r.status == 502 and r.code == "upstream_error" and r.type == "api_error"
    assert "pay.example" not in r.message and str(status) in r.message


@pytest.mark.parametrize("status", sorted(NODE_STATUSES))
def test_a_nodes_own_refusal_statuses_are_kept(status: int) -> None:
    assert node_refusal(status, b"").status == status


def test_a_body_of_exactly_max_body_bytes_is_read() -> None:
    """The byte limit is inclusive: a body of exactly MAX_BODY_BYTES is parsed, one more is not."""
    head = json.dumps({"error": {"message": "hi"}, "pad": ""}).encode()
    exact = head[:-2] + b"x" * (MAX_BODY_BYTES - len(head)) + head[-2:]
    assert len(exact) == MAX_BODY_BYTES
    assert node_message(exact) == "hi"
    over = head[:-2] + b"x" * (MAX_BODY_BYTES + 1 - len(head)) + head[-2:]
    assert node_message(over) is None


def test_499_is_a_4xx_the_gateway_answers_and_500_is_no_refusal() -> None:
    """The 4xx range ends at 499 inclusive: the two 502s say different things."""
    assert node_refusal(499, b"").message == (
        "the node refused the request with HTTP 499, a status only the gateway answers"
    )
    assert node_refusal(500, b"").message == (
        "the node answered HTTP 500, neither an answer nor a refusal"
    )


@pytest.mark.parametrize("content", [b"", b"<html>", b'{"error": "x"}'])
def test_a_refusal_without_an_error_object_is_an_invalid_request_error(content: bytes) -> None:
    r = node_refusal(400, content)
    assert r.body() == {"error": {"message": "the node refused the request with HTTP 400",
                                  "type": "invalid_request_error", "code": None, "param": None}}  # fmt: skip


def test_the_mesh_error_types_and_node_codes_are_read_from_the_error_classes() -> None:
    """Computed at import (so called here again: the constants alone would not show a change)."""
    types = _error_types()
    assert types == ERROR_TYPES
    assert {"invalid_request_error", "api_error", "authentication_error"} <= types
    assert None not in types
    codes = _codes(InvalidRequest, ModelNotFound)
    assert codes == NODE_CODES
    assert {"invalid_request", "context_length_exceeded", "limit_exceeded",
            "request_too_large", "model_not_found"} <= codes  # fmt: skip
    assert "upstream_error" not in codes and "insufficient_balance" not in codes
