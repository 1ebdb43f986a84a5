"""The gateway → node session key agreement (``core/gateway_session.py``): X25519 through
the signed registration, HKDF, and what a node refuses to agree."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from LLM_Mesh.core.gateway_auth import GatewaySigner
from LLM_Mesh.core.gateway_session import (
    KX_KEY_CHARS,
    NodeKx,
    encode_kx_key,
    kx_binding_bytes,
    parse_kx_key,
    registry_kx_private,
    session_key,
    sign_kx,
    verify_kx,
)
from LLM_Mesh.core.identity import decode_public_key

NOW = 1_700_000_000.0
NODE = "node-abc"


def _signer(key: Ed25519PrivateKey | None = None) -> GatewaySigner:
    return GatewaySigner(key or Ed25519PrivateKey.generate(), lambda: NOW)


def _agree(signer: GatewaySigner, kx: NodeKx, node: str = NODE) -> bytes | None:
    answer = signer.kx_answer(node, kx.public_key)
    assert answer is not None
    pinned = decode_public_key(signer.public_key)
    return kx.agree(pinned, signer.registry_id, node, answer[0], answer[1])


def test_both_sides_agree_the_same_key_and_no_other() -> None:
    signer, kx = _signer(), NodeKx()
    key = _agree(signer, kx)
    assert key is not None and len(key) == 32
    assert signer._sessions[NODE] == (kx.public_key, key)
    # another node (another X25519 key), or the same node id with a new process: other keys
    assert _agree(signer, NodeKx(), "node-other") not in (None, key)
    assert _agree(signer, NodeKx()) not in (None, key)


def test_the_registry_key_is_derived_from_its_ed25519_key() -> None:
    """Replicas sharing registry.key share the X25519 key: any of them agrees the same
    session key from the node's X25519 key alone (a heartbeat after a restart)."""
    ed = Ed25519PrivateKey.generate()
    a, b, other = _signer(ed), _signer(ed), _signer()
    assert a.kx_public_key == b.kx_public_key != other.kx_public_key
    raw = registry_kx_private(ed).private_bytes_raw()
    assert raw == registry_kx_private(ed).private_bytes_raw()
    assert raw != ed.private_bytes_raw()  # derived, not the Ed25519 seed itself
    kx = NodeKx()
    key = _agree(a, kx)
    assert b.agree(NODE, kx.public_key)
    assert b._sessions[NODE][1] == key
    assert other.agree(NODE, kx.public_key) and other._sessions[NODE][1] != key


def test_an_agreement_the_pinned_key_did_not_sign_is_refused() -> None:
    signer, kx = _signer(), NodeKx()
    registry_kx, signature = signer.kx_answer(NODE, kx.public_key) or ("", "")
    pinned = decode_public_key(signer.public_key)
    rid = signer.registry_id
    assert kx.agree(pinned, rid, NODE, registry_kx, signature) is not None
    # someone on the path swaps in their own X25519 key (keeping the registry's signature)
    mitm = encode_kx_key(X25519PrivateKey.generate().public_key())
    assert kx.agree(pinned, rid, NODE, mitm, signature) is None
    # ... or signs the swap with their own Ed25519 key: not the pinned one
    forged = sign_kx(Ed25519PrivateKey.generate(), kx_binding_bytes(rid, NODE, kx.public_key, mitm))
    assert kx.agree(pinned, rid, NODE, mitm, forged) is None
    # an answer meant for another node (or for another node key) does not agree here
    assert kx.agree(pinned, rid, "node-other", registry_kx, signature) is None
    assert NodeKx().agree(pinned, rid, NODE, registry_kx, signature) is None
    # no agreement offered, or garbage: none
    assert kx.agree(pinned, rid, NODE, None, None) is None
    assert kx.agree(pinned, rid, NODE, registry_kx, "!!") is None
    assert kx.agree(pinned, rid, NODE, registry_kx, 42) is None
    assert kx.agree(pinned, rid, NODE, "short", signature) is None


def test_unusable_node_keys_give_no_session() -> None:
    signer = _signer()
    zero = "A" * KX_KEY_CHARS  # the all-zero point: X25519 yields no shared secret
    assert signer.agree(NODE, zero) is False and not signer.has_session(NODE)
    assert signer.kx_answer(NODE, zero) is None
    assert signer.agree(NODE, None) is False
    good = NodeKx().public_key
    assert signer.agree(NODE, good) and signer.has_session(NODE)
    assert signer.agree(NODE, "x" * 10) is False and not signer.has_session(NODE)
    assert signer.agree(NODE, good)
    signer.forget(NODE)
    assert not signer.has_session(NODE)
    with pytest.raises(ValueError):
        session_key(X25519PrivateKey.generate(), zero, b"binding")


@pytest.mark.parametrize("text", ["", "A" * 42, "A" * 44, "+" * 43, "/" * 43, "=" * 43])
def test_parse_kx_key_refuses_what_is_not_a_key(text: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_kx_key(text)
    assert str(exc.value) == "an X25519 key is 43 base64url characters"


def test_parse_kx_key_round_trips() -> None:
    pub = X25519PrivateKey.generate().public_key()
    assert len(encode_kx_key(pub)) == KX_KEY_CHARS
    assert parse_kx_key(encode_kx_key(pub)) == pub


@pytest.mark.parametrize("i", range(4))
def test_binding_fields_must_be_single_lines(i: int) -> None:
    fields = ["registry-x", NODE, "a" * 43, "b" * 43]
    binding = kx_binding_bytes(*fields)
    assert binding.startswith(b"llm-mesh/v1/gateway-kx\n") and binding.count(b"\n") == 4
    for bad in ("", "x\ny"):
        changed = list(fields)
        changed[i] = bad
        with pytest.raises(ValueError) as exc:
            kx_binding_bytes(*changed)
        assert str(exc.value) == "key agreement fields must be non-empty single lines"


def test_the_key_is_bound_to_the_binding() -> None:
    node = X25519PrivateKey.generate()
    peer = encode_kx_key(X25519PrivateKey.generate().public_key())
    assert session_key(node, peer, b"one") == session_key(node, peer, b"one")
    assert session_key(node, peer, b"one") != session_key(node, peer, b"two")


def test_verify_kx() -> None:
    ed = Ed25519PrivateKey.generate()
    sig = sign_kx(ed, b"data")
    assert verify_kx(ed.public_key(), sig, b"data")
    assert not verify_kx(ed.public_key(), sig, b"datb")
    assert not verify_kx(Ed25519PrivateKey.generate().public_key(), sig, b"data")
    assert not verify_kx(ed.public_key(), "not base64!", b"data")


def test_verify_kx_takes_a_signature_padded_or_not_and_nothing_else_around_it() -> None:
    """The signature as ``sign_kx`` writes it (86 characters, no padding), with its two
    ``=`` or one; a character outside base64url anywhere is a refusal, even around the
    right 64 bytes (a lenient decoder would drop it and verify)."""
    ed = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    sig = sign_kx(ed, b"data")
    assert len(sig) == 86 and not sig.endswith("=")
    for spelled in (sig, sig + "=", sig + "=="):
        assert verify_kx(ed.public_key(), spelled, b"data"), spelled
    for junk in (sig[:40] + "." + sig[40:], sig[:40] + " " + sig[40:], "*" + sig, sig + "==="):
        assert not verify_kx(ed.public_key(), junk, b"data"), junk


def test_the_wire_format_is_pinned() -> None:
    """Known answer for fixed keys: a change to any domain string, field order or
    derivation breaks nodes and registries of the released version (bump the version in
    the domain strings instead). The values were computed by this implementation and
    checked to agree on both sides below."""
    from LLM_Mesh.core.gateway_auth import HDR_GATEWAY_MAC

    ed = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    kx = NodeKx(X25519PrivateKey.from_private_bytes(bytes(range(32, 64))))
    signer = GatewaySigner(ed, lambda: 1_700_000_000.0)
    assert signer.kx_public_key == "7RpaPd3QsHK8YShnFFL2duzhDl-Ua7Lvyxp7rQ9DmUw"
    assert kx.public_key == "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ"
    key = _agree(signer, kx, "node-x")
    assert key is not None
    assert key.hex() == "5936738303ab12acd7fd0a00299a5e3d3100cada6928c2c1b17dc58d707a4960"
    headers = signer.headers("node-x", "req-1", "/v1/chat/completions", "ab" * 32)
    assert headers[HDR_GATEWAY_MAC] == "-klI6RZMNxVNT93_JtqN3zCfYmcOk9RDqSqmkVtDR94"
