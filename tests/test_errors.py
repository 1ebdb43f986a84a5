"""The one exception tree (errors.py): status/type/code, OpenAI shape, round trips."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.errors import (
    BadSignature,
    ContextLengthExceeded,
    EngineError,
    Forbidden,
    InvalidCredential,
    InvalidRequest,
    LimitExceeded,
    MeshError,
    ModelNotFound,
    ModelUnavailable,
    NodeIdMismatch,
    Overloaded,
    PayloadTooLarge,
    RegistryUnreachable,
    ReplayedMessage,
    Revoked,
    StaleMessage,
    StoreUnavailable,
    Unauthorized,
    UnknownNode,
    UpstreamError,
    UpstreamTimeout,
    error_from_payload,
)

# class, HTTP status, OpenAI type, code — the table in the module docstring.
TABLE: list[tuple[type[MeshError], int, str, str | None]] = [
    (MeshError, 500, "api_error", None),
    (InvalidRequest, 400, "invalid_request_error", "invalid_request"),
    (ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
    (LimitExceeded, 400, "invalid_request_error", "limit_exceeded"),
    (PayloadTooLarge, 413, "invalid_request_error", "request_too_large"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (ModelUnavailable, 503, "service_unavailable", "model_unavailable"),
    (Overloaded, 429, "rate_limit_error", "overloaded"),
    (UnknownNode, 404, "invalid_request_error", "unknown_node"),
    (Unauthorized, 401, "authentication_error", "unauthorized"),
    (BadSignature, 401, "authentication_error", "invalid_signature"),
    (StaleMessage, 401, "authentication_error", "stale_message"),
    (ReplayedMessage, 401, "authentication_error", "replayed_message"),
    (InvalidCredential, 401, "authentication_error", "invalid_credential"),
    (Forbidden, 403, "permission_error", "forbidden"),
    (NodeIdMismatch, 403, "permission_error", "node_id_mismatch"),
    (Revoked, 403, "permission_error", "revoked"),
    (StoreUnavailable, 503, "service_unavailable", "store_unavailable"),
    (UpstreamError, 502, "api_error", "upstream_error"),
    (UpstreamTimeout, 504, "api_error", "upstream_timeout"),
    (EngineError, 500, "api_error", "engine_error"),
    (RegistryUnreachable, 503, "api_error", "registry_unreachable"),
]

SUBCLASSES = [row for row in TABLE if row[0] is not MeshError]


@pytest.mark.parametrize(("cls", "status", "type_", "code"), TABLE)
def test_status_type_code_per_class(
    cls: type[MeshError], status: int, type_: str, code: str | None
) -> None:
    assert cls.status == status
    assert cls.type == type_
    assert cls.code == code
    assert issubclass(cls, MeshError)
    assert issubclass(cls, Exception)


def test_hierarchy() -> None:
    assert issubclass(ContextLengthExceeded, InvalidRequest)
    assert issubclass(PayloadTooLarge, LimitExceeded)
    assert issubclass(LimitExceeded, InvalidRequest)
    assert issubclass(UpstreamTimeout, UpstreamError)
    assert not issubclass(ModelUnavailable, UpstreamError)


@pytest.mark.parametrize(("cls", "status", "type_", "code"), TABLE)
def test_to_openai_shape(cls: type[MeshError], status: int, type_: str, code: str | None) -> None:
    body = cls("it broke", param="model").to_openai()
    assert list(body) == ["error"]
    err = body["error"]
    assert err["message"] == "it broke"
    assert err["type"] == type_
    assert err["code"] == code
    assert err["param"] == "model"
    assert {"message", "type", "param", "code"} <= set(err)


def test_to_openai_param_defaults_to_none_and_message_is_str() -> None:
    exc = InvalidRequest("bad")
    assert str(exc) == "bad"
    assert exc.message == "bad"
    assert exc.to_openai() == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    }


def test_model_unavailable_body_carries_available_and_retry_after() -> None:
    exc = ModelUnavailable("down", model="code-llama-7b", available=["gemma-3-270m"], retry_after=7)
    err = exc.to_openai()["error"]
    assert err["code"] == "model_unavailable"
    assert err["model"] == "code-llama-7b"
    assert err["available"] == ["gemma-3-270m"]
    assert err["retry_after"] == 7
    assert exc.available == ["gemma-3-270m"]
    assert exc.retry_after == 7
    assert exc.model == "code-llama-7b"


def test_model_unavailable_defaults_and_copies_list() -> None:
    avail = ["a"]
    exc = ModelUnavailable("down", available=avail)
    avail.append("b")
    assert exc.available == ["a"]
    assert exc.retry_after == 10
    assert ModelUnavailable("down").available == []


def test_overloaded_retry_after() -> None:
    exc = Overloaded("busy", retry_after=3)
    assert exc.retry_after == 3
    assert exc.to_openai()["error"]["retry_after"] == 3
    assert Overloaded("busy").retry_after == 1


@pytest.mark.parametrize(("cls", "status", "type_", "code"), SUBCLASSES)
def test_error_from_payload_round_trips_each_class(
    cls: type[MeshError], status: int, type_: str, code: str | None
) -> None:
    original = cls("went wrong", param="p")
    rebuilt = error_from_payload(cls.status, original.to_openai())
    assert type(rebuilt) is cls
    assert rebuilt.message == "went wrong"
    assert rebuilt.to_openai()["error"]["code"] == code
    if cls not in (ModelUnavailable, Overloaded):
        assert rebuilt.param == "p"


@pytest.mark.parametrize(("allowed", "kept"), [(1000, 1000), (True, None), ("1000", None),
                                              (0, None), (1.5, None), (2**60, None)])  # fmt: skip
def test_a_413_keeps_the_gateways_limit_as_a_whole_number_only(allowed: Any, kept: Any) -> None:
    """Found 2026-12-06 (cli38): a 413's ``allowed`` (the gateway's body limit) was dropped,
    so ``ask`` could not say it; a gateway's words, it is kept only as a whole number."""
    body = {"error": {"message": "too large", "code": "request_too_large", "allowed": allowed}}
    rebuilt = error_from_payload(413, body)
    assert type(rebuilt) is PayloadTooLarge
    assert rebuilt.extra.get("allowed") == kept  # (failed before: None for 1000)


def test_error_from_payload_code_wins_over_status() -> None:
    # The body's code decides the class, whatever the HTTP status says.
    rebuilt = error_from_payload(500, UnknownNode("who?").to_openai())
    assert type(rebuilt) is UnknownNode


def test_round_trip_model_unavailable_fields() -> None:
    original = ModelUnavailable(
        "no node hosts code-llama-7b",
        model="code-llama-7b",
        available=["gemma-3-270m", "mistral-7b"],
        retry_after=42,
    )
    rebuilt = error_from_payload(503, original.to_openai())
    assert isinstance(rebuilt, ModelUnavailable)
    assert rebuilt.available == ["gemma-3-270m", "mistral-7b"]
    assert rebuilt.retry_after == 42
    assert rebuilt.model == "code-llama-7b"
    assert rebuilt.to_openai() == original.to_openai()


def test_round_trip_overloaded_retry_after() -> None:
    rebuilt = error_from_payload(429, Overloaded("queue full", retry_after=5).to_openai())
    assert isinstance(rebuilt, Overloaded)
    assert rebuilt.retry_after == 5


def test_round_trip_model_unavailable_without_extras_uses_defaults() -> None:
    body = {
        "error": {"message": "down", "type": "service_unavailable", "code": "model_unavailable"}
    }
    rebuilt = error_from_payload(503, body)
    assert isinstance(rebuilt, ModelUnavailable)
    assert rebuilt.available == []
    assert rebuilt.retry_after == 10


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequest),
        (404, ModelNotFound),
        (429, Overloaded),
        (503, ModelUnavailable),
        (500, UpstreamError),
        (502, UpstreamError),
        (418, UpstreamError),
    ],
)
def test_unknown_code_falls_back_on_status(status: int, cls: type[MeshError]) -> None:
    body = {"error": {"message": "hm", "type": "x", "code": "something_new"}}
    rebuilt = error_from_payload(status, body)
    assert type(rebuilt) is cls
    assert rebuilt.message == "hm"


def test_missing_message_says_the_status() -> None:
    rebuilt = error_from_payload(404, {"error": {"code": "model_not_found"}})
    assert type(rebuilt) is ModelNotFound
    assert "404" in rebuilt.message


@pytest.mark.parametrize(
    "payload",
    ["<html>Bad Gateway</html>", None, ["error"], 17, {"detail": "nope"}, {"error": "a string"}],
)
def test_non_dict_payloads_become_upstream_error(payload: Any) -> None:
    rebuilt = error_from_payload(502, payload)
    assert type(rebuilt) is UpstreamError
    assert "502" in rebuilt.message


def test_non_dict_payload_text_is_truncated() -> None:
    rebuilt = error_from_payload(500, "x" * 5000)
    assert type(rebuilt) is UpstreamError
    assert len(rebuilt.message) < 400


@pytest.mark.parametrize("bad", ["soon", None, [], {"s": 1}])
def test_malformed_retry_after_does_not_crash(bad: Any) -> None:
    body = {"error": {"message": "down", "code": "model_unavailable", "retry_after": bad}}
    rebuilt = error_from_payload(503, body)
    assert isinstance(rebuilt, ModelUnavailable)
    assert rebuilt.retry_after == 10
    body = {"error": {"message": "busy", "code": "overloaded", "retry_after": bad}}
    rebuilt = error_from_payload(429, body)
    assert isinstance(rebuilt, Overloaded)
    assert rebuilt.retry_after == 1


def test_retry_after_zero_is_kept() -> None:
    rebuilt = error_from_payload(429, Overloaded("busy", retry_after=0).to_openai())
    assert isinstance(rebuilt, Overloaded)
    assert rebuilt.retry_after == 0
    rebuilt = error_from_payload(503, ModelUnavailable("down", retry_after=0).to_openai())
    assert isinstance(rebuilt, ModelUnavailable)
    assert rebuilt.retry_after == 0


def test_model_unavailable_available_not_a_list_is_ignored() -> None:
    body = {"error": {"message": "down", "code": "model_unavailable", "available": "gemma-3-270m"}}
    rebuilt = error_from_payload(503, body)
    assert isinstance(rebuilt, ModelUnavailable)
    assert rebuilt.available == []
