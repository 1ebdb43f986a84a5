"""The signer's bytes made from a per-node prefix and its MAC from two copied SHA-256
states (branch admit26, 2026-12-05): the same bytes, MACs and errors as the canonical
construction (``gateway_bytes`` as written before, ``hmac.digest``)."""

from __future__ import annotations

import base64
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core import gateway_auth
from LLM_Mesh.core.gateway_auth import (
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    GatewaySigner,
    gateway_bytes,
)
from LLM_Mesh.core.gateway_session import NodeKx

NOW = 1_700_000_000.0
SHA = "ab" * 32
KIND = gateway_auth._KIND


def canonical(
    registry_id: str, node_id: str, request_id: str, path: str, ts: int, sha: str
) -> bytes:
    """``gateway_bytes`` as it was written until 2026-12-05."""
    fields = (("registry id", registry_id), ("node id", node_id), ("request id", request_id),
              ("path", path))  # fmt: skip
    for name, value in fields:
        if not value or "\n" in value or len(value) > 256:
            raise ValueError(f"{name} must be a non-empty single line")
    return b"\n".join((KIND, registry_id.encode(), node_id.encode(), request_id.encode(),
                       path.encode(), str(int(ts)).encode("ascii"), sha.encode("ascii")))  # fmt: skip


def outcome(f: object, *args: object) -> object:
    try:
        return f(*args)  # type: ignore[operator]
    except ValueError as exc:
        return ("ValueError", str(exc))


CASES = [
    ("reg-1", "node-1", "req-1", "/v1/chat/completions", 1, SHA),
    ("reg-é", "nöde", "req-✓", "/v1/completions", 1_700_000_000_123, SHA),
    ("r" * 256, "n" * 256, "q" * 256, "p" * 256, 0, SHA),
    ("", "node", "req", "/p", 1, SHA),
    ("reg", "", "req", "/p", 1, SHA),
    ("reg", "no\nde", "req", "/p", 1, SHA),
    ("reg", "node", "r" * 257, "/p", 1, SHA),
    ("reg", "node", "req", "", 1, SHA),
    ("reg", "node", "req\n", "/p\n", 1, SHA),
    ("r" * 257, "n\n", "", "", 1, SHA),  # the first bad field named, as before
]


@pytest.mark.parametrize("case", CASES)
def test_gateway_bytes_are_the_canonical_bytes_and_refuse_the_same_fields(case: tuple) -> None:
    assert outcome(gateway_bytes, *case) == outcome(canonical, *case)


@pytest.mark.parametrize(
    "key", [b"", b"k" * 16, bytes(range(32)), b"x" * 64, b"y" * 65, b"z" * 200]
)
@pytest.mark.parametrize("data", [b"", b"a", b"d" * 64, b"e" * 1000])
def test_the_mac_from_copied_states_is_hmac_sha256(key: bytes, data: bytes) -> None:
    keyed = gateway_auth._keyed(key)
    assert gateway_auth._mac_from(keyed, data) == hmac.digest(key, data, "sha256")
    assert gateway_auth._mac_from(keyed, data) == hmac.digest(key, data, "sha256")  # reusable


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_every_request_to_a_node_signs_its_own_bytes_with_the_nodes_prefix() -> None:
    """Two nodes, one with a session key and one without, requests interleaved: each
    header set authenticates exactly ``gateway_bytes`` of that node and request."""
    key = Ed25519PrivateKey.generate()
    signer = GatewaySigner(key, lambda: NOW)
    kx = NodeKx()
    assert signer.agree("node-mac", kx.public_key)
    session = signer._sessions["node-mac"][1]
    for i in range(3):
        for node in ("node-mac", "node-sig", "node-mac"):
            rid, path = f"req-{i}-{node}", "/v1/chat/completions" if i % 2 else "/v1/completions"
            h = signer.headers(node, rid, path, SHA)
            data = canonical(signer.registry_id, node, rid, path, int(NOW * 1000), SHA)
            if node == "node-mac":
                assert _unb64(h[HDR_GATEWAY_MAC]) == hmac.digest(session, data, "sha256")
            else:
                key.public_key().verify(_unb64(h[HDR_GATEWAY_SIGNATURE]), data)
    with pytest.raises(ValueError, match="request id must be"):
        signer.headers("node-mac", "bad\nid", "/v1/completions", SHA)
    with pytest.raises(ValueError, match="node id must be"):
        signer.headers("bad\nnode", "req", "/v1/completions", SHA)
    signer.forget("node-mac")
    assert "node-mac" not in signer._prefixes
