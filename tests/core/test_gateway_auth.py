"""The pure gateway → node signature rules (``core/gateway_auth.py``)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_auth import (
    HDR_BODY_SHA256,
    HDR_GATEWAY,
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    HDR_GATEWAY_TIME,
    HDR_REQUEST_ID,
    GatewaySigner,
    GatewayVerifier,
    ReplayCache,
    gateway_bytes,
    registry_id_for,
)
from LLM_Mesh.core.identity import MessageKind, NodeSigner, public_key_of, signed_bytes
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage
from tests.core.gateway_auth_fixtures import (
    BODY,
    NODE,
    NOW,
    PATH,
    refused,
    sha,
    signer,
    verifier,
)

__all__ = ["signer"]  # the fixture


def test_signed_request_verifies_once(signer: GatewaySigner) -> None:
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert set(headers) == {HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_SIGNATURE, HDR_REQUEST_ID,
                            HDR_BODY_SHA256}  # fmt: skip
    assert headers[HDR_BODY_SHA256] == sha(BODY)  # the signed hash, sent
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage):
        v.verify(headers, PATH, BODY, NOW + 1)
    # the same request id signed again (a continuation, a later time) is a new message
    later = GatewaySigner(signer._key, lambda: NOW + 0.5)
    v.verify(later.headers(NODE, "req-1", PATH, sha(BODY)), PATH, BODY, NOW + 1)


@pytest.mark.parametrize("digest", [True, False], ids=["digest_header", "older_gateway"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("node", "node-other"), ("path", "/v1/completions"), ("body", b"{}"), ("rid", "req-2"),
     ("body_and_digest", b"{}")],
)  # fmt: skip
def test_anything_changed_after_signing_is_refused(
    signer: GatewaySigner, field: str, value: object, digest: bool
) -> None:
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    if not digest:
        del headers[HDR_BODY_SHA256]
    node, path, body = NODE, PATH, BODY
    if field == "node":
        v = GatewayVerifier(signer.public_key, str(value))
    elif field == "path":
        path = str(value)
    elif field.startswith("body"):
        body = value  # type: ignore[assignment]
        if field == "body_and_digest" and digest:
            headers[HDR_BODY_SHA256] = sha(body)
    else:
        headers[HDR_REQUEST_ID] = str(value)
    altered = digest and field == "body"
    with pytest.raises(BadSignature, match="not the one" if altered else "does not verify"):
        v.verify(headers, path, body, NOW)
    assert node == NODE


def test_another_registry_key_is_refused(signer: GatewaySigner) -> None:
    other = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    headers = other.headers(NODE, "req-1", PATH, sha(BODY))
    with pytest.raises(BadSignature, match="this node serves"):
        verifier(signer).verify(headers, PATH, BODY, NOW)
    headers[HDR_GATEWAY] = signer.registry_id  # claims the pinned id
    with pytest.raises(BadSignature, match="does not verify"):
        verifier(signer).verify(headers, PATH, BODY, NOW)


@pytest.mark.parametrize("missing", [HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_SIGNATURE,
                                     HDR_REQUEST_ID])  # fmt: skip
def test_missing_headers_are_refused(signer: GatewaySigner, missing: str) -> None:
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    del headers[missing]
    with pytest.raises(BadSignature, match="gateway"):
        verifier(signer).verify(headers, PATH, BODY, NOW)


# "\u00b2" (a latin-1 header byte) is str.isdigit() but no int() (found 2026-12-02: ValueError)
@pytest.mark.parametrize("ts", ["-5", "12x", "9" * 19, "\u00b2", "17\u00b3"])
def test_garbage_timestamps_are_refused(signer: GatewaySigner, ts: str) -> None:
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    headers[HDR_GATEWAY_TIME] = ts
    with pytest.raises(BadSignature):
        verifier(signer).verify(headers, PATH, BODY, NOW)


@pytest.mark.parametrize(("skew", "ok"), [(119.0, True), (-119.0, True), (121.0, False),
                                          (-121.0, False)])  # fmt: skip
def test_timestamp_window(signer: GatewaySigner, skew: float, ok: bool) -> None:
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    v = verifier(signer)
    if ok:
        v.verify(headers, PATH, BODY, NOW + skew)
    else:
        with pytest.raises(StaleMessage):
            v.verify(headers, PATH, BODY, NOW + skew)


def test_a_node_message_signature_is_no_gateway_signature() -> None:
    """Domain separation: bytes a node signs can never be a gateway request's."""
    key = Ed25519PrivateKey.generate()
    node_signed = signed_bytes(MessageKind.HEARTBEAT, "a", "b", 1, 2, BODY)
    gw = gateway_bytes("a", "b", "1", "x", 2, sha(BODY))
    assert node_signed.split(b"\n")[0] != gw.split(b"\n")[0]
    assert gw.startswith(b"llm-mesh/v1/gateway-request\n")
    # a node key's id is not a registry id, even for the same key
    ns = NodeSigner(key, lambda: NOW)
    assert registry_id_for(public_key_of(key)) != ns.node_id
    assert registry_id_for(public_key_of(key)).startswith("registry-")


def test_newlines_cannot_shift_fields() -> None:
    with pytest.raises(ValueError):
        gateway_bytes("r", "n\nx", "1", PATH, 1, sha(BODY))


def test_replay_cache_forgets_only_what_is_too_old_anyway() -> None:
    cache = ReplayCache(window_s=10, max_entries=1000)
    assert cache.add(b"a", 1_000, now_ms=1_000)
    assert not cache.add(b"a", 1_000, now_ms=5_000)
    assert cache.add(b"b", 12_000, now_ms=12_000)  # "a" (ts 1 s) is now beyond the window
    assert len(cache) == 1


def test_full_replay_cache_refuses_what_it_dropped() -> None:
    cache = ReplayCache(window_s=100, max_entries=2)
    assert cache.add(b"a", 1_000, now_ms=1_000)
    assert cache.add(b"b", 2_000, now_ms=2_000)
    assert cache.add(b"c", 3_000, now_ms=3_000)  # drops "a": floor = 1 s
    assert cache.floor_ms == 1_000
    assert not cache.add(b"a", 1_000, now_ms=3_000)  # "a" cannot come back
    assert len(cache) == 2


def test_a_replay_cache_of_one_entry_is_allowed_and_of_none_is_not() -> None:
    assert ReplayCache(max_entries=1).add(b"a", 0, now_ms=0)  # time zero is a time
    with pytest.raises(ValueError) as exc:
        ReplayCache(max_entries=0)
    assert str(exc.value) == "max_entries must be at least 1"


def test_an_entry_exactly_one_window_old_is_still_remembered() -> None:
    cache = ReplayCache(window_s=1.0)
    assert cache.add(b"a", 1_000, now_ms=1_000)
    assert not cache.add(b"a", 1_000, now_ms=2_000)  # exactly 1 s old: still a replay
    assert cache.add(b"a", 1_000, now_ms=2_001)  # older than the window: forgotten


def test_a_message_no_newer_than_one_dropped_from_a_full_cache_is_refused() -> None:
    cache = ReplayCache(window_s=100, max_entries=1)
    assert cache.add(b"a", 5_000, now_ms=5_000)
    assert not cache.add(b"b", 5_000, now_ms=5_000)  # "a" dropped: 5 s is the floor now
    assert cache.add(b"c", 5_001, now_ms=5_001)


def test_each_refused_gateway_request_says_why(signer: GatewaySigner) -> None:
    """What a node answers (401) to a request that is not its gateway's, in words."""
    v = verifier(signer)
    good = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert refused(v, {k: x for k, x in good.items() if k != HDR_GATEWAY}) == (
        "this node serves inference to its mesh's gateway only: the request carries no "
        f"gateway signature ({HDR_GATEWAY} is missing); send it to the gateway's /v1 instead"
    )
    assert refused(v, {**good, HDR_GATEWAY_TIME: "1" * 19}) == (
        f"{HDR_GATEWAY_TIME} must be unix milliseconds"
    )
    assert refused(v, {**good, HDR_GATEWAY_SIGNATURE: "***"}) == (
        f"{HDR_GATEWAY_SIGNATURE} is not base64url"
    )
    assert refused(v, {**good, HDR_GATEWAY_MAC: "***"}) == f"{HDR_GATEWAY_MAC} is not base64url"
    other = "registry-" + "x" * 100
    assert refused(v, {**good, HDR_GATEWAY: other}) == (
        f"request signed for gateway {other[:80]!r}; this node serves {signer.registry_id}"
    )
    assert refused(v, good, path="/v1/completions") == (
        "the gateway signature does not verify (another key, another node or endpoint, "
        "or the body was altered)"
    )
    assert refused(v, good, now=NOW + 300) == (
        "the gateway's timestamp is -300 s from this node's clock (at most ±120 s)"
    )
    assert refused(v, {**good, HDR_GATEWAY_MAC: "AAAA"}) == (
        "this node has agreed no session key with the gateway (it registers again to agree "
        "one): a MAC cannot be checked; the gateway's signature can"
    )
    assert v.verify(good, PATH, BODY, NOW) == signer.registry_id
    assert refused(v, good) == "request 'req-1' was already served (replayed)"
    long_id = signer.headers(NODE, "r" * 100, PATH, sha(BODY))
    v.verify(long_id, PATH, BODY, NOW)
    assert refused(v, long_id) == f"request {'r' * 80!r} was already served (replayed)"


def test_a_gateway_timestamp_has_at_most_18_digits_and_the_window_is_inclusive(
    signer: GatewaySigner,
) -> None:
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert v.verify(headers, PATH, BODY, NOW + 120) == signer.registry_id  # exactly 120 s
    assert refused(v, {**headers, HDR_GATEWAY_TIME: "0" * 18 + "1"}) == (
        f"{HDR_GATEWAY_TIME} must be unix milliseconds"
    )


@pytest.mark.parametrize("key", [b"", b"k" * 31, b"k" * 33])
def test_a_registry_id_needs_a_32_byte_key_in_words(key: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        registry_id_for(key)
    assert str(caught.value) == "an Ed25519 public key is 32 bytes"
