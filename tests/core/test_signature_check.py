"""The shared steps of an Ed25519 signature given as base64url texts
(``core/signature_check.py``): the key, the signature, then the bytes."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import encode
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.signature_check import Unverified, public_key_from, signature_problem

KEY = Ed25519PrivateKey.generate()
PUBLIC = encode_public_key(public_key_of(KEY))
SIGNED = encode(KEY.sign(b"data"))


def _refused() -> bytes:
    raise ValueError("bytes that cannot be made")


def test_each_step_in_its_order() -> None:
    assert signature_problem(PUBLIC, SIGNED, lambda: b"data") is None
    for key in (None, 7, "", "!", encode(bytes(31)), encode(bytes(33))):
        assert public_key_from(key) is None
        assert signature_problem(key, SIGNED, lambda: b"data") is Unverified.KEY
    for signature in (None, "", "!", encode(bytes(63)), encode(bytes(65))):
        assert signature_problem(PUBLIC, signature, lambda: b"data") is Unverified.SIGNATURE
    assert signature_problem(PUBLIC, SIGNED, lambda: b"other") is Unverified.MISMATCH
    assert signature_problem(PUBLIC, SIGNED, _refused) is Unverified.MISMATCH
    other = encode_public_key(public_key_of(Ed25519PrivateKey.generate()))
    assert signature_problem(other, SIGNED, lambda: b"data") is Unverified.MISMATCH
