"""The pure gateway → node signature rules (``core/gateway_auth.py``)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_auth import (
    HDR_GATEWAY,
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

NOW = 1_700_000_000.0
NODE = "node-abc"
PATH = "/v1/chat/completions"
BODY = b'{"model":"m","messages":[]}'


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def signer() -> GatewaySigner:
    return GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)


def _verifier(signer: GatewaySigner, **kw: object) -> GatewayVerifier:
    return GatewayVerifier(signer.public_key, NODE, **kw)  # type: ignore[arg-type]


def test_signed_request_verifies_once(signer: GatewaySigner) -> None:
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert set(headers) == {HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_SIGNATURE, HDR_REQUEST_ID}
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage):
        v.verify(headers, PATH, BODY, NOW + 1)
    # the same request id signed again (a continuation, a later time) is a new message
    later = GatewaySigner(signer._key, lambda: NOW + 0.5)
    v.verify(later.headers(NODE, "req-1", PATH, _sha(BODY)), PATH, BODY, NOW + 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("node", "node-other"), ("path", "/v1/completions"), ("body", b"{}"), ("rid", "req-2")],
)
def test_anything_changed_after_signing_is_refused(
    signer: GatewaySigner, field: str, value: object
) -> None:
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    node, path, body = NODE, PATH, BODY
    if field == "node":
        v = GatewayVerifier(signer.public_key, str(value))
    elif field == "path":
        path = str(value)
    elif field == "body":
        body = value  # type: ignore[assignment]
    else:
        headers[HDR_REQUEST_ID] = str(value)
    with pytest.raises(BadSignature):
        v.verify(headers, path, body, NOW)
    assert node == NODE


def test_another_registry_key_is_refused(signer: GatewaySigner) -> None:
    other = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    headers = other.headers(NODE, "req-1", PATH, _sha(BODY))
    with pytest.raises(BadSignature, match="this node serves"):
        _verifier(signer).verify(headers, PATH, BODY, NOW)
    headers[HDR_GATEWAY] = signer.registry_id  # claims the pinned id
    with pytest.raises(BadSignature, match="does not verify"):
        _verifier(signer).verify(headers, PATH, BODY, NOW)


@pytest.mark.parametrize("missing", [HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_SIGNATURE,
                                     HDR_REQUEST_ID])  # fmt: skip
def test_missing_headers_are_refused(signer: GatewaySigner, missing: str) -> None:
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    del headers[missing]
    with pytest.raises(BadSignature, match="gateway"):
        _verifier(signer).verify(headers, PATH, BODY, NOW)


@pytest.mark.parametrize("ts", ["-5", "12x", "9" * 19])
def test_garbage_timestamps_are_refused(signer: GatewaySigner, ts: str) -> None:
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    headers[HDR_GATEWAY_TIME] = ts
    with pytest.raises(BadSignature):
        _verifier(signer).verify(headers, PATH, BODY, NOW)


@pytest.mark.parametrize(("skew", "ok"), [(119.0, True), (-119.0, True), (121.0, False),
                                          (-121.0, False)])  # fmt: skip
def test_timestamp_window(signer: GatewaySigner, skew: float, ok: bool) -> None:
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    v = _verifier(signer)
    if ok:
        v.verify(headers, PATH, BODY, NOW + skew)
    else:
        with pytest.raises(StaleMessage):
            v.verify(headers, PATH, BODY, NOW + skew)


def test_a_node_message_signature_is_no_gateway_signature() -> None:
    """Domain separation: bytes a node signs can never be a gateway request's."""
    key = Ed25519PrivateKey.generate()
    node_signed = signed_bytes(MessageKind.HEARTBEAT, "a", "b", 1, 2, BODY)
    gw = gateway_bytes("a", "b", "1", "x", 2, _sha(BODY))
    assert node_signed.split(b"\n")[0] != gw.split(b"\n")[0]
    assert gw.startswith(b"llm-mesh/v1/gateway-request\n")
    # a node key's id is not a registry id, even for the same key
    ns = NodeSigner(key, lambda: NOW)
    assert registry_id_for(public_key_of(key)) != ns.node_id
    assert registry_id_for(public_key_of(key)).startswith("registry-")


def test_newlines_cannot_shift_fields() -> None:
    with pytest.raises(ValueError):
        gateway_bytes("r", "n\nx", "1", PATH, 1, _sha(BODY))


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
