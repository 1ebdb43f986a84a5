"""The pure gateway → node signature rules (``core/gateway_auth.py``)."""

from __future__ import annotations

import base64
import hashlib
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
    ReplayCache,
    gateway_bytes,
    registry_id_for,
)
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.core.identity import MessageKind, NodeSigner, public_key_of, signed_bytes
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage

NOW = 1_700_000_000.0
NODE = "node-abc"
PATH = "/v1/chat/completions"
BODY = b'{"model":"m","messages":[]}'


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def signer() -> GatewaySigner:
    return GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)


def _verifier(signer: GatewaySigner, **kw: object) -> GatewayVerifier:
    return GatewayVerifier(signer.public_key, NODE, **kw)  # type: ignore[arg-type]


def test_signed_request_verifies_once(signer: GatewaySigner) -> None:
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert set(headers) == {HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_SIGNATURE, HDR_REQUEST_ID,
                            HDR_BODY_SHA256}  # fmt: skip
    assert headers[HDR_BODY_SHA256] == _sha(BODY)  # the signed hash, sent
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage):
        v.verify(headers, PATH, BODY, NOW + 1)
    # the same request id signed again (a continuation, a later time) is a new message
    later = GatewaySigner(signer._key, lambda: NOW + 0.5)
    v.verify(later.headers(NODE, "req-1", PATH, _sha(BODY)), PATH, BODY, NOW + 1)


@pytest.mark.parametrize("digest", [True, False], ids=["digest_header", "older_gateway"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("node", "node-other"), ("path", "/v1/completions"), ("body", b"{}"), ("rid", "req-2"),
     ("body_and_digest", b"{}")],
)  # fmt: skip
def test_anything_changed_after_signing_is_refused(
    signer: GatewaySigner, field: str, value: object, digest: bool
) -> None:
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
            headers[HDR_BODY_SHA256] = _sha(body)
    else:
        headers[HDR_REQUEST_ID] = str(value)
    altered = digest and field == "body"
    with pytest.raises(BadSignature, match="not the one" if altered else "does not verify"):
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


# "\u00b2" (a latin-1 header byte) is str.isdigit() but no int() (found 2026-12-02: ValueError)
@pytest.mark.parametrize("ts", ["-5", "12x", "9" * 19, "\u00b2", "17\u00b3"])
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


# --- the session key (HMAC) path ------------------------------------------------------


def _session(signer: GatewaySigner, node: str = NODE, kx: NodeKx | None = None) -> GatewayVerifier:
    """A node's verifier that agreed a session key with ``signer`` (as at registration)."""
    kx = kx or NodeKx()
    answer = signer.kx_answer(node, kx.public_key)
    assert answer is not None
    v = GatewayVerifier(signer.public_key, node)
    v.session_key = kx.agree(v.key, v.registry_id, node, answer[0], answer[1])
    assert v.session_key is not None
    return v


def test_with_a_session_the_gateway_sends_a_mac_that_verifies_once(signer: GatewaySigner) -> None:
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert set(headers) == {HDR_GATEWAY, HDR_GATEWAY_TIME, HDR_GATEWAY_MAC, HDR_REQUEST_ID,
                            HDR_BODY_SHA256}  # fmt: skip
    assert len(headers[HDR_GATEWAY_MAC]) == 43  # HMAC-SHA256, base64url
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage):
        v.verify(headers, PATH, BODY, NOW + 1)


def test_a_replayed_mac_cannot_come_back_as_a_signature(signer: GatewaySigner) -> None:
    """One replay cache for both: the same signed bytes are accepted once, however sent."""
    v = _session(signer)
    mac = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    v.verify(mac, PATH, BODY, NOW)
    signer.forget(NODE)
    sig = signer.headers(NODE, "req-1", PATH, _sha(BODY))  # same ts (clock stands still)
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
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
            headers[HDR_BODY_SHA256] = _sha(body)
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
    va, vb = _session(signer, "node-a", a), _session(signer, "node-b", b)
    assert va.session_key != vb.session_key
    for_b = signer.headers("node-b", "req-1", PATH, _sha(BODY))
    # what node A could compute: a MAC with its own key over a request for node B
    forged = dict(for_b)
    vb_as_a = GatewayVerifier(signer.public_key, "node-b")
    vb_as_a.session_key = va.session_key
    import base64
    import hmac as _hmac

    data = gateway_bytes(signer.registry_id, "node-b", "req-1", PATH, int(NOW * 1000), _sha(BODY))
    tag = _hmac.digest(va.session_key or b"", data, "sha256")
    forged[HDR_GATEWAY_MAC] = base64.urlsafe_b64encode(tag).rstrip(b"=").decode()
    with pytest.raises(BadSignature, match="MAC does not verify"):
        vb.verify(forged, PATH, BODY, NOW)
    vb.verify(for_b, PATH, BODY, NOW)  # the gateway's own is served
    with pytest.raises(BadSignature):  # and node B's request does not verify at node A
        va.verify(signer.headers("node-b", "req-2", PATH, _sha(BODY)), PATH, BODY, NOW)


def test_a_stale_agreement_is_refused(signer: GatewaySigner) -> None:
    """The node re-registered from a new process (new X25519 key), or the node pinned a
    new registry key: MACs under the old agreement are refused."""
    old = _session(signer)
    stale = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    new = _session(signer)  # the gateway agreed again with the node's new process
    with pytest.raises(BadSignature, match="MAC does not verify"):
        new.verify(stale, PATH, BODY, NOW)
    with pytest.raises(BadSignature, match="MAC does not verify"):
        old.verify(signer.headers(NODE, "req-2", PATH, _sha(BODY)), PATH, BODY, NOW)
    # a node that pinned a new registry key has no session with it until it agrees one
    fresh = GatewayVerifier(signer.public_key, NODE)
    with pytest.raises(BadSignature, match="no session key"):
        fresh.verify(signer.headers(NODE, "req-3", PATH, _sha(BODY)), PATH, BODY, NOW)
    other = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    moved = _session(other)
    with pytest.raises(BadSignature):  # the old registry's MAC at a node now pinned elsewhere
        moved.verify(signer.headers(NODE, "req-4", PATH, _sha(BODY)), PATH, BODY, NOW)


@pytest.mark.parametrize(("skew", "ok"), [(119.0, True), (121.0, False), (-121.0, False)])
def test_mac_timestamp_window(signer: GatewaySigner, skew: float, ok: bool) -> None:
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    if ok:
        v.verify(headers, PATH, BODY, NOW + skew)
    else:
        with pytest.raises(StaleMessage):
            v.verify(headers, PATH, BODY, NOW + skew)


def test_a_node_with_a_session_still_accepts_the_signature(signer: GatewaySigner) -> None:
    """A registry that has not heard the node's X25519 key (restarted, a replica) signs."""
    v = _session(signer)
    signer.forget(NODE)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert HDR_GATEWAY_SIGNATURE in headers
    assert v.verify(headers, PATH, BODY, NOW) == signer.registry_id


@pytest.mark.parametrize("mac", ["not base64!", "A" * 43, "A" * 10])
def test_garbage_macs_are_refused(signer: GatewaySigner, mac: str) -> None:
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    headers[HDR_GATEWAY_MAC] = mac
    with pytest.raises(BadSignature):
        v.verify(headers, PATH, BODY, NOW)
    assert len(v.cache) == 0  # nothing refused is remembered


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


def test_a_session_is_kept_for_the_same_key_and_forgotten_without_one(
    signer: GatewaySigner,
) -> None:
    kx = NodeKx()
    assert signer.agree(NODE, kx.public_key)
    assert signer.agree(NODE, kx.public_key)  # the same key again: still agreed
    assert HDR_GATEWAY_MAC in signer.headers(NODE, "r1", PATH, _sha(BODY))
    assert not signer.agree(NODE, None)  # the node no longer offers a key
    assert HDR_GATEWAY_MAC not in signer.headers(NODE, "r2", PATH, _sha(BODY))
    assert signer.agree(NODE, kx.public_key)
    signer.forget(NODE)
    assert HDR_GATEWAY_MAC not in signer.headers(NODE, "r3", PATH, _sha(BODY))


def _refused(
    v: GatewayVerifier, headers: dict[str, str], now: float = NOW, path: str = PATH
) -> str:
    with pytest.raises((BadSignature, StaleMessage, ReplayedMessage)) as exc:
        v.verify(headers, path, BODY, now)
    return str(exc.value)


def test_each_refused_gateway_request_says_why(signer: GatewaySigner) -> None:
    """What a node answers (401) to a request that is not its gateway's, in words."""
    v = _verifier(signer)
    good = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert _refused(v, {k: x for k, x in good.items() if k != HDR_GATEWAY}) == (
        "this node serves inference to its mesh's gateway only: the request carries no "
        f"gateway signature ({HDR_GATEWAY} is missing); send it to the gateway's /v1 instead"
    )
    assert _refused(v, {**good, HDR_GATEWAY_TIME: "1" * 19}) == (
        f"{HDR_GATEWAY_TIME} must be unix milliseconds"
    )
    assert _refused(v, {**good, HDR_GATEWAY_SIGNATURE: "***"}) == (
        f"{HDR_GATEWAY_SIGNATURE} is not base64url"
    )
    assert _refused(v, {**good, HDR_GATEWAY_MAC: "***"}) == f"{HDR_GATEWAY_MAC} is not base64url"
    other = "registry-" + "x" * 100
    assert _refused(v, {**good, HDR_GATEWAY: other}) == (
        f"request signed for gateway {other[:80]!r}; this node serves {signer.registry_id}"
    )
    assert _refused(v, good, path="/v1/completions") == (
        "the gateway signature does not verify (another key, another node or endpoint, "
        "or the body was altered)"
    )
    assert _refused(v, good, now=NOW + 300) == (
        "the gateway's timestamp is -300 s from this node's clock (at most ±120 s)"
    )
    assert _refused(v, {**good, HDR_GATEWAY_MAC: "AAAA"}) == (
        "this node has agreed no session key with the gateway (it registers again to agree "
        "one): a MAC cannot be checked; the gateway's signature can"
    )
    assert v.verify(good, PATH, BODY, NOW) == signer.registry_id
    assert _refused(v, good) == "request 'req-1' was already served (replayed)"
    long_id = signer.headers(NODE, "r" * 100, PATH, _sha(BODY))
    v.verify(long_id, PATH, BODY, NOW)
    assert _refused(v, long_id) == f"request {'r' * 80!r} was already served (replayed)"


def test_a_gateway_timestamp_has_at_most_18_digits_and_the_window_is_inclusive(
    signer: GatewaySigner,
) -> None:
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert v.verify(headers, PATH, BODY, NOW + 120) == signer.registry_id  # exactly 120 s
    assert _refused(v, {**headers, HDR_GATEWAY_TIME: "0" * 18 + "1"}) == (
        f"{HDR_GATEWAY_TIME} must be unix milliseconds"
    )


def test_a_mac_under_another_session_key_says_so(signer: GatewaySigner) -> None:
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    v.session_key = bytes(32)
    assert _refused(v, headers) == (
        "the gateway's MAC does not verify (another node's or an older session key, "
        "another node or endpoint, or the body was altered)"
    )


def test_a_node_with_a_new_session_key_gets_macs_under_that_key_only(
    signer: GatewaySigner,
) -> None:
    """The signer keeps each node's keyed HMAC ready (one copy per request): a node that
    agrees a new key (a new X25519 key) is sent MACs under the new key, never the old."""
    old = _session(signer)
    new = _session(signer)  # the same node, a new X25519 key
    assert old.session_key != new.session_key
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert new.verify(headers, PATH, BODY, NOW) == signer.registry_id
    assert _refused(old, headers).startswith("the gateway's MAC does not verify")


def test_the_mac_is_hmac_sha256_of_the_signed_bytes_under_the_session_key(
    signer: GatewaySigner,
) -> None:
    v = _session(signer)
    assert v.session_key is not None
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    data = gateway_bytes(signer.registry_id, NODE, "req-1", PATH,
                         int(headers[HDR_GATEWAY_TIME]), _sha(BODY))  # fmt: skip
    want = hmac.digest(v.session_key, data, "sha256")
    assert headers[HDR_GATEWAY_MAC] == base64.urlsafe_b64encode(want).rstrip(b"=").decode()


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
    v = _session(signer) if session else _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
    _session(signer)  # the gateway holds a key the node does not
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    with pytest.raises(BadSignature, match="no session key"):
        _verifier(signer).precheck(headers, NOW, PATH)


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
def test_precheck_looks_the_replay_cache_up_without_adding(
    signer: GatewaySigner, session: bool
) -> None:
    v = _session(signer) if session else _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
    fresh = later.headers(NODE, "req-2", PATH, _sha(BODY))
    v.precheck(fresh, NOW + 1, PATH)
    v.cache.floor_ms = int((NOW + 0.5) * 1000)
    with pytest.raises(ReplayedMessage):
        v.precheck(fresh, NOW + 1, PATH)


def test_check_body_refuses_a_body_that_does_not_match(signer: GatewaySigner) -> None:
    """An older gateway (no body SHA-256 header): the pre-check passes on headers anyone
    can forge, the body's check still decides."""
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
    v = _session(signer) if session else _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    name = _no_tag(headers)
    forged = {**headers, name: _b64(bytes(len(_unb64(headers[name]))))}
    with pytest.raises(BadSignature, match="does not verify"):
        v.precheck(forged, NOW, PATH)
    with pytest.raises(BadSignature, match="does not verify"):  # another endpoint
        v.precheck(headers, NOW, "/v1/completions")
    for bad in ("\u00e9" * 64, _sha(BODY)[:63], _sha(BODY) + "0"):
        with pytest.raises(BadSignature, match="64 lower-case hex"):
            v.precheck({**headers, HDR_BODY_SHA256: bad}, NOW, PATH)
    for other in ("x" * 64, _sha(BODY).upper()):  # not what the gateway signed
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
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
    data = gateway_bytes(signer.registry_id, NODE, "req-1", PATH, ts_ms, _sha(BODY))
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    signer._key.public_key().verify(_unb64(headers[HDR_GATEWAY_SIGNATURE]), data)
    v = _session(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert v.session_key is not None
    assert _unb64(headers[HDR_GATEWAY_MAC]) == hmac.digest(v.session_key, data, "sha256")


# written against the module's mutants (mut33, 2026-12-06)


def test_a_request_id_of_two_lines_is_refused_before_the_signature() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    for rid in ("a\nb", "req-1\nX-Other: 1"):
        with pytest.raises(BadSignature) as caught:
            v.precheck({**headers, HDR_REQUEST_ID: rid}, NOW, PATH)
        assert str(caught.value) == (
            "malformed gateway request: request id must be a non-empty single line"
        )
    older = {k: x for k, x in headers.items() if k != HDR_BODY_SHA256}
    with pytest.raises(BadSignature, match="request id must be a non-empty single line"):
        v.precheck({**older, HDR_REQUEST_ID: "a\nb"}, NOW, PATH)  # before the body is read
    longest = signer.headers(NODE, "r" * 256, PATH, _sha(BODY))  # 256: the most allowed
    assert v.verify(longest, PATH, BODY, NOW) == signer.registry_id


def test_a_gateway_timestamp_of_18_digits_is_read() -> None:
    """18 digits are a timestamp (judged by the clock: stale), 19 are not one."""
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    with pytest.raises(StaleMessage):
        v.precheck({**headers, HDR_GATEWAY_TIME: "1" * 18}, NOW, PATH)


def test_a_path_the_signed_bytes_cannot_hold_is_refused_in_words() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = _verifier(signer)
    headers = signer.headers(NODE, "req-1", PATH, _sha(BODY))
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
    v = _verifier(signer)
    headers = signer.headers(NODE, "r" * 100, PATH, _sha(BODY))
    first, second = v.precheck(headers, NOW, PATH), v.precheck(headers, NOW, PATH)
    assert v.check_body(first, PATH, BODY, NOW) == signer.registry_id
    with pytest.raises(ReplayedMessage) as caught:
        v.check_body(second, PATH, BODY, NOW)
    assert str(caught.value) == f"request {'r' * 80!r} was already served (replayed)"


def test_a_gateway_pinned_anew_while_the_body_arrived_is_named() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = _verifier(signer)
    pre = v.precheck(signer.headers(NODE, "req-1", PATH, _sha(BODY)), NOW, PATH)
    other = "registry-" + "y" * 100
    with pytest.raises(BadSignature) as caught:
        v.check_body((other, *pre[1:]), PATH, BODY, NOW)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"request signed for gateway {other[:80]!r}; this node serves {signer.registry_id}"
    )


def test_a_wrong_body_does_not_make_the_node_forget_what_it_served() -> None:
    signer = GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)
    v = _verifier(signer)
    served = signer.headers(NODE, "req-1", PATH, _sha(BODY))
    assert v.verify(served, PATH, BODY, NOW) == signer.registry_id
    wrong = signer.headers(NODE, "req-2", PATH, _sha(BODY))
    with pytest.raises(BadSignature):
        v.verify(wrong, PATH, b"{}", NOW + 1)
    with pytest.raises(ReplayedMessage):
        v.verify(served, PATH, BODY, NOW + 2)


@pytest.mark.parametrize("key", [b"", b"k" * 31, b"k" * 33])
def test_a_registry_id_needs_a_32_byte_key_in_words(key: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        registry_id_for(key)
    assert str(caught.value) == "an Ed25519 public key is 32 bytes"
