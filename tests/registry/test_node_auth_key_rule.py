"""``registry/node_auth.py``: no node key the receipt rule refuses (core/ed25519.py) is
registered, so every registered node's receipts verify at the gateway and offline alike."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import (
    HDR_NODE,
    HDR_OPERATOR_TOKEN,
    HDR_PUBLIC_KEY,
    HDR_SEQ,
    HDR_SIGNATURE,
    HDR_TIME,
    MessageKind,
    encode_public_key,
    node_id_for,
    signed_bytes,
)
from LLM_Mesh.core.receipt import b64url
from LLM_Mesh.errors import BadSignature
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_auth import SignedNodeAuth
from tests.core.ed25519_encodings import IDENTITY, anything_signature
from tests.registry.helpers import registration

NOW = 1_800_000_000.0


def _registration(raw_key: bytes, sign: object) -> tuple[dict[str, str], bytes]:
    """A registration of the node ``raw_key`` is, signed by ``sign(data)``."""
    assert callable(sign)
    node_id = node_id_for(raw_key)
    body = json.dumps(registration(node_id)).encode()
    seq, ts_ms = int(NOW * 1_000_000), int(NOW * 1000)
    data = signed_bytes(MessageKind.REGISTER, node_id, node_id, seq, ts_ms, body)
    headers = {
        HDR_NODE: node_id, HDR_SEQ: str(seq), HDR_TIME: str(ts_ms),
        HDR_SIGNATURE: b64url(sign(data)),
        HDR_PUBLIC_KEY: encode_public_key(raw_key), HDR_OPERATOR_TOKEN: "lmo_x",
    }  # fmt: skip
    return headers, body


def test_a_small_order_node_key_is_not_registered() -> None:
    """The neutral point as a node key: its one "signature" fits every message, and
    OpenSSL's verify took it (found 2026-12-05: the registration passed)."""
    auth = SignedNodeAuth(MemoryStore(), wall_clock=lambda: NOW)
    honest = Ed25519PrivateKey.generate()
    headers, body = _registration(honest.public_key().public_bytes_raw(), honest.sign)
    assert auth.check_registration(headers, body).node_id == headers[HDR_NODE]  # the control
    headers, body = _registration(IDENTITY, lambda _: anything_signature())
    with pytest.raises(BadSignature, match="prime-order subgroup"):
        auth.check_registration(headers, body)
