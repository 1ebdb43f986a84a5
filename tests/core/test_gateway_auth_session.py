"""Gateway requests under a session key: a MAC that verifies once, what it refuses (a changed
request, another node's key, a stale agreement, the window, garbage, another session key), and
the MAC itself."""

from __future__ import annotations

import base64
import hmac

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
    gateway_bytes,
)
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage
from tests.core.gateway_auth_fixtures import (
    BODY,
    NODE,
    NOW,
    PATH,
    refused,
    session_verifier,
    sha,
    signer,
)

__all__ = ["signer"]  # the fixture


def test_with_a_session_the_gateway_sends_a_mac_that_verifies_once(signer: GatewaySigner) -> None:
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert set(headers) == {HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_MAC, HDR_REQUEST_ID,
                            HDR_BODY_SHA256}  # fmt: skip
    assert len(headers[HDR_GATEWAY_MAC]) == 43  # HMAC-SHA256, base64url
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage):
        v.verify(headers, PATH, BODY, NOW + 1)


def test_a_replayed_mac_cannot_come_back_as_a_signature(signer: GatewaySigner) -> None:
    """One replay cache for both: the same signed bytes are accepted once, however sent."""
    v = session_verifier(signer)
    mac = signer.headers(NODE, "req-1", PATH, sha(BODY))
    v.verify(mac, PATH, BODY, NOW)
    signer.forget(NODE)
    sig = signer.headers(NODE, "req-1", PATH, sha(BODY))  # same ts (clock stands still)
    assert HDR_GATEWAY_SIGNATURE in sig and HDR_GATEWAY_MAC not in sig
    with pytest.raises(ReplayedMessage):
        v.verify(sig, PATH, BODY, NOW)


@pytest.mark.parametrize("digest", [True, False], ids=["digest_header", "older_gateway"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("node", "node-other"), ("path", "/v1/completions"), ("body", b"{}"), ("rid", "req-2"),
     ("ts", str(int(NOW * 1000) + 1)), ("body_and_digest", b"{}")],
)  # fmt: skip
def test_anything_changed_after_the_mac_is_refused(
    signer: GatewaySigner, field: str, value: object, digest: bool
) -> None:
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    if not digest:
        del headers[HDR_BODY_SHA256]
    path, body = PATH, BODY
    if field == "node":
        v.node_id = str(value)  # the request reaches another node holding the same key
    elif field == "path":
        path = str(value)
    elif field.startswith("body"):
        body = value  # type: ignore[assignment]
        if field == "body_and_digest" and digest:
            headers[HDR_BODY_SHA256] = sha(body)
    elif field == "ts":
        headers[HDR_GATEWAY_TIME] = str(value)
    else:
        headers[HDR_REQUEST_ID] = str(value)
    altered = digest and field == "body"
    with pytest.raises(BadSignature, match="body is not the one" if altered else "MAC does not"):
        v.verify(headers, path, body, NOW)


def test_the_key_of_another_node_is_refused(signer: GatewaySigner) -> None:
    """Node A knows its own session key: it cannot make a request node B accepts."""
    a, b = NodeKx(), NodeKx()
    va, vb = session_verifier(signer, "node-a", a), session_verifier(signer, "node-b", b)
    assert va.session_key != vb.session_key
    for_b = signer.headers("node-b", "req-1", PATH, sha(BODY))
    # what node A could compute: a MAC with its own key over a request for node B
    forged = dict(for_b)
    vb_as_a = GatewayVerifier(signer.public_key, "node-b")
    vb_as_a.session_key = va.session_key
    import base64
    import hmac as _hmac

    data = gateway_bytes(signer.registry_id, "node-b", "req-1", PATH, int(NOW * 1000), sha(BODY))
    tag = _hmac.digest(va.session_key or b"", data, "sha256")
    forged[HDR_GATEWAY_MAC] = base64.urlsafe_b64encode(tag).rstrip(b"=").decode()
    with pytest.raises(BadSignature, match="MAC does not verify"):
        vb.verify(forged, PATH, BODY, NOW)
    vb.verify(for_b, PATH, BODY, NOW)  # the gateway's own is served
    with pytest.raises(BadSignature):  # and node B's request does not verify at node A
        va.verify(signer.headers("node-b", "req-2", PATH, sha(BODY)), PATH, BODY, NOW)


def test_a_stale_agreement_is_refused(signer: GatewaySigner) -> None:
    """The node re-registered from a new process (new X25519 key), or the node pinned a
    new registry key: MACs under the old agreement are refused."""
    old = session_verifier(signer)
    stale = signer.headers(NODE, "req-1", PATH, sha(BODY))
    new = session_verifier(signer)  # the gateway agreed again with the node's new process
    with pytest.raises(BadSignature, match="MAC does not verify"):
        new.verify(stale, PATH, BODY, NOW)
    with pytest.raises(BadSignature, match="MAC does not verify"):
        old.verify(signer.headers(NODE, "req-2", PATH, sha(BODY)), PATH, BODY, NOW)
    # a node that pinned a new registry key has no session with it until it agrees one
    fresh = GatewayVerifier(signer.public_key, NODE)
    with pytest.raises(BadSignature, match="no session key"):
        fresh.verify(signer.headers(NODE, "req-3", PATH, sha(BODY)), PATH, BODY, NOW)
    other = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    moved = session_verifier(other)
    with pytest.raises(BadSignature):  # the old registry's MAC at a node now pinned elsewhere
        moved.verify(signer.headers(NODE, "req-4", PATH, sha(BODY)), PATH, BODY, NOW)


@pytest.mark.parametrize(("skew", "ok"), [(119.0, True), (121.0, False), (-121.0, False)])
def test_mac_timestamp_window(signer: GatewaySigner, skew: float, ok: bool) -> None:
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    if ok:
        v.verify(headers, PATH, BODY, NOW + skew)
    else:
        with pytest.raises(StaleMessage):
            v.verify(headers, PATH, BODY, NOW + skew)


def test_a_node_with_a_session_still_accepts_the_signature(signer: GatewaySigner) -> None:
    """A registry that has not heard the node's X25519 key (restarted, a replica) signs."""
    v = session_verifier(signer)
    signer.forget(NODE)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert HDR_GATEWAY_SIGNATURE in headers
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id


@pytest.mark.parametrize("mac", ["not base64!", "A" * 43, "A" * 10])
def test_garbage_macs_are_refused(signer: GatewaySigner, mac: str) -> None:
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    headers[HDR_GATEWAY_MAC] = mac
    with pytest.raises(BadSignature):
        v.verify(headers, PATH, BODY, NOW)
    assert len(v.cache) == 0  # nothing refused is remembered


def test_a_session_is_kept_for_the_same_key_and_forgotten_without_one(
    signer: GatewaySigner,
) -> None:
    kx = NodeKx()
    assert signer.agree(NODE, kx.public_key)
    assert signer.agree(NODE, kx.public_key)  # the same key again: still agreed
    assert HDR_GATEWAY_MAC in signer.headers(NODE, "r1", PATH, sha(BODY))
    assert not signer.agree(NODE, None)  # the node no longer offers a key
    assert HDR_GATEWAY_MAC not in signer.headers(NODE, "r2", PATH, sha(BODY))
    assert signer.agree(NODE, kx.public_key)
    signer.forget(NODE)
    assert HDR_GATEWAY_MAC not in signer.headers(NODE, "r3", PATH, sha(BODY))


def test_a_mac_under_another_session_key_says_so(signer: GatewaySigner) -> None:
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    v.session_key = bytes(32)
    assert refused(v, headers) == (
        "the gateway's MAC does not verify (another node's or an older session key, "
        "another node or endpoint, or the body was altered)"
    )


def test_a_node_with_a_new_session_key_gets_macs_under_that_key_only(
    signer: GatewaySigner,
) -> None:
    """The signer keeps each node's keyed HMAC ready (one copy per request): a node that
    agrees a new key (a new X25519 key) is sent MACs under the new key, never the old."""
    old = session_verifier(signer)
    new = session_verifier(signer)  # the same node, a new X25519 key
    assert old.session_key != new.session_key
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert new.verify(headers, PATH, BODY, NOW) == signer.registry_id
    assert refused(old, headers).startswith("the gateway's MAC does not verify")


def test_the_mac_is_hmac_sha256_of_the_signed_bytes_under_the_session_key(
    signer: GatewaySigner,
) -> None:
    v = session_verifier(signer)
    assert v.session_key is not None
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    data = gateway_bytes(signer.registry_id, NODE, "req-1", PATH,
                         int(headers[HDR_GATEWAY_TIME]), sha(BODY))  # fmt: skip
    want = hmac.digest(v.session_key, data, "sha256")
    assert headers[HDR_GATEWAY_MAC] == base64.urlsafe_b64encode(want).rstrip(b"=").decode()
