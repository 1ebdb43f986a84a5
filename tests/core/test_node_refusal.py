"""core/node_refusal.py: a node's non-200 body → the client's OpenAI error object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core.node_refusal import (
    ERROR_TYPES,
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    NODE_STATUSES,
    node_message,
    node_refusal,
)


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
