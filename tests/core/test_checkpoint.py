"""Checkpoints as C2SP signed notes: sign, open, and every way one fails."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import BadCheckpoint, key_hash, open_checkpoint, sign_checkpoint, vkey

ORIGIN = "example.test/ledger"


def _key() -> tuple[Ed25519PrivateKey, bytes]:
    k = Ed25519PrivateKey.generate()
    return k, k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_round_trip_and_format() -> None:
    key, pub = _key()
    root = hashlib.sha256(b"r").digest()
    cp = sign_checkpoint(key, pub, ORIGIN, 42, root, 123)
    body, sig = cp.note.split("\n\n")
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(root).decode()}\ntime 123"
    assert sig.startswith(f"\u2014 {ORIGIN} ") and sig.endswith("\n")
    raw = base64.b64decode(sig.rsplit(" ", 1)[1])
    assert (
        raw[:4]
        == key_hash(ORIGIN, pub)
        == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    )
    key.public_key().verify(raw[4:], (body + "\n").encode())
    opened = open_checkpoint(cp.note, ORIGIN, pub)
    assert (opened.tree_size, opened.root_hash, opened.time_us) == (42, root, 123)
    assert vkey(ORIGIN, pub).startswith(f"{ORIGIN}+{key_hash(ORIGIN, pub).hex()}+")


def test_tampering_and_wrong_keys_fail() -> None:
    key, pub = _key()
    cp = sign_checkpoint(key, pub, ORIGIN, 42, bytes(32), 1)
    _, other = _key()
    with pytest.raises(BadCheckpoint):
        open_checkpoint(cp.note, ORIGIN, other)
    with pytest.raises(BadCheckpoint):
        open_checkpoint(cp.note.replace("\n42\n", "\n43\n"), ORIGIN, pub)
    with pytest.raises(BadCheckpoint):
        open_checkpoint(cp.note, "other.test/ledger", pub)
    with pytest.raises(BadCheckpoint):
        open_checkpoint(cp.note.split("\n\n")[0], ORIGIN, pub)
    with pytest.raises(ValueError):
        sign_checkpoint(key, pub, "has space", 1, bytes(32), 1)
