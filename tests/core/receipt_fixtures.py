"""Fixed keys and builders shared by the receipt tests (core/receipt.py, receipt_check.py)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.receipt import NodeReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part

__all__ = [
    "HASH", "NODE_KEY", "OTHER_KEY", "REGISTRY_ID", "REGISTRY_KEY", "TEXT",
    "check", "node_claim", "observed",
]  # fmt: skip

NODE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
REGISTRY_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
REGISTRY_ID = registry_id_for(public_key_of(REGISTRY_KEY))
TEXT = "Hello, mesh! é"
HASH = output_sha256(TEXT)


def node_claim(signer: NodeReceiptSigner | None = None, **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "registry_id": REGISTRY_ID, "request_id": "req-1", "model": "gemma-3-270m",
        "prompt_tokens": 10, "completion_tokens": 5, "output_sha256": HASH,
    }  # fmt: skip
    fields.update(over)
    return (signer or NodeReceiptSigner(NODE_KEY)).sign(**fields)


def observed(claim: Any, **over: Any) -> Observed:
    kw: dict[str, Any] = {
        "node_id": NodeReceiptSigner(NODE_KEY).node_id, "prompt_tokens": 10,
        "completion_tokens": 5, "output_sha256": HASH, "claim": claim,
    }  # fmt: skip
    kw.update(over)
    return Observed(**kw)


def check(obs: Observed, **over: Any) -> Any:
    kw: dict[str, Any] = {"registry_id": REGISTRY_ID, "request_id": "req-1",
                          "model": "gemma-3-270m", "keys": NodeKeys()}  # fmt: skip
    kw.update(over)
    return check_part(obs, **kw)
