"""A gateway request checked in two steps: the precheck on the headers alone (and the replay
cache, the declared sha256, a MAC without a session key), then the body; and the signed bytes'
edges (request id, timestamp, path, copies, a gateway pinned anew)."""

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
    gateway_bytes,
)
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage
from tests.core.gateway_auth_fixtures import (
    BODY,
    NODE,
    NOW,
    PATH,
    session_verifier,
    sha,
    signer,
    verifier,
)

__all__ = ["signer"]  # the fixture


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- headers first (found 2026-12-03: the body was read and hashed before any refusal) --


def _no_tag(headers: dict[str, str]) -> str:
    return HDR_GATEWAY_MAC if HDR_GATEWAY_MAC in headers else HDR_GATEWAY_SIGNATURE


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("no_gateway", BadSignature, "X-Mesh-Gateway is missing"),
        ("no_tag", BadSignature, "is missing"),
        ("another_registry", BadSignature, "this node serves"),
        ("garbage_timestamp", BadSignature, "unix milliseconds"),
        ("garbage_tag", BadSignature, "not base64url"),
        ("short_tag", BadSignature, "does not verify"),
        ("request_id_too_long", BadSignature, "malformed gateway request"),
        ("stale", StaleMessage, "from this node's clock"),
    ],
)
def test_precheck_refuses_on_the_headers_alone(
    signer: GatewaySigner, session: bool, case: str, error: type[Exception], words: str
) -> None:
    """Each refusal the headers decide, with the message :meth:`verify` gives, before a
    body exists; nothing is cached."""
    v = session_verifier(signer) if session else verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    now = NOW
    if case == "no_gateway":
        del headers[HDR_GATEWAY]
    elif case == "no_tag":
        del headers[_no_tag(headers)]
    elif case == "another_registry":
        headers[HDR_GATEWAY] = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW).registry_id
    elif case == "garbage_timestamp":
        headers[HDR_GATEWAY_TIME] = "17\u00b3"
    elif case == "garbage_tag":
        headers[_no_tag(headers)] = "no base64!"
    elif case == "short_tag":
        headers[_no_tag(headers)] = headers[_no_tag(headers)][:20]
    elif case == "request_id_too_long":
        headers[HDR_REQUEST_ID] = "r" * 257
    else:
        now = NOW + 121
    with pytest.raises(error, match=words):
        v.precheck(headers, now, PATH)
    with pytest.raises(error, match=words):  # the same refusal with the body
        v.verify(headers, PATH, BODY, now)
    assert len(v.cache) == 0


def test_precheck_refuses_a_mac_without_a_session_key(signer: GatewaySigner) -> None:
    session_verifier(signer)  # the gateway holds a key the node does not
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    with pytest.raises(BadSignature, match="no session key"):
        verifier(signer).precheck(headers, NOW, PATH)


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
def test_precheck_looks_the_replay_cache_up_without_adding(
    signer: GatewaySigner, session: bool
) -> None:
    v = session_verifier(signer) if session else verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    pre = v.precheck(headers, NOW, PATH)
    assert v.precheck(headers, NOW, PATH) == pre and len(v.cache) == 0  # nothing added
    assert v.check_body(pre, PATH, BODY, NOW) == signer.registry_id
    assert len(v.cache) == 1
    with pytest.raises(ReplayedMessage, match="already served"):  # its tag, no body needed
        v.precheck(headers, NOW + 1, PATH)
    with pytest.raises(ReplayedMessage):  # and the full check, as before
        v.check_body(pre, PATH, BODY, NOW + 1)
    # another message passes the pre-check; one at or below a full cache's floor does not
    later = GatewaySigner(signer._key, lambda: NOW + 0.5)
    if session:
        later._sessions, later._keyed = signer._sessions, signer._keyed
    fresh = later.headers(NODE, "req-2", PATH, sha(BODY))
    v.precheck(fresh, NOW + 1, PATH)
    v.cache.floor_ms = int((NOW + 0.5) * 1000)
    with pytest.raises(ReplayedMessage):
        v.precheck(fresh, NOW + 1, PATH)


def test_check_body_refuses_a_body_that_does_not_match(signer: GatewaySigner) -> None:
    """An older gateway (no body SHA-256 header): the pre-check passes on headers anyone
    can forge, the body's check still decides."""
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    del headers[HDR_BODY_SHA256]
    pre = v.precheck(headers, NOW, PATH)
    with pytest.raises(BadSignature, match="does not verify"):
        v.check_body(pre, PATH, b"{}", NOW)
    with pytest.raises(StaleMessage):  # the body took past the window to arrive
        v.check_body(pre, PATH, BODY, NOW + 121)
    assert len(v.cache) == 0
    v.check_body(pre, PATH, BODY, NOW)


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
def test_precheck_verifies_the_tag_over_the_declared_sha256(
    signer: GatewaySigner, session: bool
) -> None:
    """With the body's SHA-256 in the headers, a forged tag is refused before the body
    exists; the honest one passes and the body must then have that SHA-256."""
    v = session_verifier(signer) if session else verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    name = _no_tag(headers)
    forged = {**headers, name: _b64(bytes(len(_unb64(headers[name]))))}
    with pytest.raises(BadSignature, match="does not verify"):
        v.precheck(forged, NOW, PATH)
    with pytest.raises(BadSignature, match="does not verify"):  # another endpoint
        v.precheck(headers, NOW, "/v1/completions")
    for bad in ("\u00e9" * 64, sha(BODY)[:63], sha(BODY) + "0"):
        with pytest.raises(BadSignature, match="64 lower-case hex"):
            v.precheck({**headers, HDR_BODY_SHA256: bad}, NOW, PATH)
    for other in ("x" * 64, sha(BODY).upper()):  # not what the gateway signed
        with pytest.raises(BadSignature, match="does not verify"):
            v.precheck({**headers, HDR_BODY_SHA256: other}, NOW, PATH)
    pre = v.precheck(headers, NOW, PATH)
    with pytest.raises(BadSignature, match="not the one the gateway signed"):
        v.check_body(pre, PATH, b"{}", NOW)
    assert len(v.cache) == 1  # its tag verified: remembered, not usable again
    with pytest.raises(ReplayedMessage):
        v.precheck(headers, NOW, PATH)


def test_a_node_that_requires_the_sha256_refuses_a_request_without_it(
    signer: GatewaySigner,
) -> None:
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    without = {k: v for k, v in headers.items() if k != HDR_BODY_SHA256}
    v.precheck(without, NOW, PATH)  # an older registry: checked with the body
    v.require_digest = True
    with pytest.raises(BadSignature, match=HDR_BODY_SHA256):
        v.precheck(without, NOW, PATH)
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id


def test_the_signed_bytes_are_unchanged_for_an_older_node(signer: GatewaySigner) -> None:
    """The header is sent, not signed: an older node that ignores it and hashes the body
    verifies the signature (and the MAC) over the same canonical bytes as before."""
    ts_ms = int(NOW * 1000)
    data = gateway_bytes(signer.registry_id, NODE, "req-1", PATH, ts_ms, sha(BODY))
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    signer._key.public_key().verify(_unb64(headers[HDR_GATEWAY_SIGNATURE]), data)
    v = session_verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert v.session_key is not None
    assert _unb64(headers[HDR_GATEWAY_MAC]) == hmac.digest(v.session_key, data, "sha256")


# written against the module's mutants (mut33, 2026-12-06)


def test_a_request_id_of_two_lines_is_refused_before_the_signature() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    for rid in ("a\nb", "req-1\nX-Other: 1"):
        with pytest.raises(BadSignature) as caught:
            v.precheck({**headers, HDR_REQUEST_ID: rid}, NOW, PATH)
        assert str(caught.value) == (
            "malformed gateway request: request id must be a non-empty single line"
        )
    older = {k: x for k, x in headers.items() if k != HDR_BODY_SHA256}
    with pytest.raises(BadSignature, match="request id must be a non-empty single line"):
        v.precheck({**older, HDR_REQUEST_ID: "a\nb"}, NOW, PATH)  # before the body is read
    longest = signer.headers(NODE, "r" * 256, PATH, sha(BODY))  # 256: the most allowed
    assert v.verify(longest, PATH, BODY, NOW) == signer.registry_id


def test_a_gateway_timestamp_of_18_digits_is_read() -> None:
    """18 digits are a timestamp (judged by the clock: stale), 19 are not one."""
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    with pytest.raises(StaleMessage):
        v.precheck({**headers, HDR_GATEWAY_TIME: "1" * 18}, NOW, PATH)


def test_a_path_the_signed_bytes_cannot_hold_is_refused_in_words() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, sha(BODY))
    said = "malformed gateway request: path must be a non-empty single line"
    with pytest.raises(BadSignature) as caught:
        v.precheck(headers, NOW, "/v1/x\ny")
    assert str(caught.value) == said
    older = {k: x for k, x in headers.items() if k != HDR_BODY_SHA256}  # checked with the body
    pre = v.precheck(older, NOW, "/v1/x\ny")
    with pytest.raises(BadSignature) as caught:
        v.check_body(pre, "/v1/x\ny", BODY, NOW)
    assert str(caught.value) == said


def test_two_copies_prechecked_together_are_served_once() -> None:
    """Both copies of a request pass the pre-check before either body is read: the second
    body's check finds the first in the replay cache."""
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    headers = signer.headers(NODE, "r" * 100, PATH, sha(BODY))
    first, second = v.precheck(headers, NOW, PATH), v.precheck(headers, NOW, PATH)
    assert v.check_body(first, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage) as caught:
        v.check_body(second, PATH, BODY, NOW)
    assert str(caught.value) == f"request {'r' * 80!r} was already served (replayed)"


def test_a_gateway_pinned_anew_while_the_body_arrived_is_named() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    pre = v.precheck(signer.headers(NODE, "req-1", PATH, sha(BODY)), NOW, PATH)
    other = "registry-" + "y" * 100
    with pytest.raises(BadSignature) as caught:
        v.check_body((other, *pre[1:]), PATH, BODY, NOW)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"request signed for gateway {other[:80]!r}; this node serves {signer.registry_id}"
    )


def test_a_wrong_body_does_not_make_the_node_forget_what_it_served() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = verifier(signer)
    served = signer.headers(NODE, "req-1", PATH, sha(BODY))
    assert v.verify(served, PATH, BODY, NOW) == signer.registry_id
    wrong = signer.headers(NODE, "req-2", PATH, sha(BODY))
    with pytest.raises(BadSignature):
        v.verify(wrong, PATH, b"{}", NOW + 1)
    with pytest.raises(ReplayedMessage):
        v.verify(served, PATH, BODY, NOW + 2)
