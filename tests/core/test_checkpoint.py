"""Checkpoints as C2SP signed notes: sign, open, and every way one fails."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import (
    BadCheckpoint,
    key_hash,
    open_checkpoint,
    parse_log_vkey,
    sign_checkpoint,
    vkey,
)

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


def _opening_fails(note: str, origin: str, pub: bytes) -> str:
    with pytest.raises(BadCheckpoint) as exc:
        open_checkpoint(note, origin, pub)
    return str(exc.value)


def test_what_a_signed_checkpoint_and_an_opened_one_say() -> None:
    key, pub = _key()
    cp = sign_checkpoint(key, pub, ORIGIN, 0, bytes(32), -5)  # the empty tree can be signed
    assert (cp.origin, cp.tree_size, cp.root_hash, cp.time_us) == (ORIGIN, 0, bytes(32), -5)
    opened = open_checkpoint(cp.note, ORIGIN, pub)
    assert opened == cp


@pytest.mark.parametrize("origin", ["", "a\nb", "a b", "a+b"])
def test_an_origin_is_one_line_without_spaces_or_plus(origin: str) -> None:
    key, pub = _key()
    with pytest.raises(ValueError) as exc:
        sign_checkpoint(key, pub, origin, 1, bytes(32), 0)
    assert str(exc.value) == "a checkpoint origin is one non-empty line without spaces or '+'"


@pytest.mark.parametrize(("size", "root"), [(-1, bytes(32)), (1, bytes(31))])
def test_a_checkpoint_has_a_size_of_zero_or_more_and_a_32_byte_root(size: int, root: bytes) -> None:
    key, pub = _key()
    with pytest.raises(ValueError) as exc:
        sign_checkpoint(key, pub, ORIGIN, size, root, 0)
    assert str(exc.value) == "a checkpoint has a 32-byte root and a size >= 0"


def test_each_malformed_note_is_refused_saying_why() -> None:
    key, pub = _key()
    note = sign_checkpoint(key, pub, ORIGIN, 42, bytes(32), 1).note
    body, sigs = note.split("\n\n")
    b64root = base64.b64encode(bytes(32)).decode()
    other_origin = "not a checkpoint of 'other.test/ledger' (origin, size, root, time)"
    cases = {
        body + "\n" + sigs: "not a signed note (no blank line before the signatures)",
        "\n\n" + sigs: "not a signed note (no blank line before the signatures)",
        note.replace("\ntime 1\n", "\ntime 1\nextra 2\n"): f"not a checkpoint of {ORIGIN!r} (origin, size, root, time)",
        note.replace("\ntime 1\n", "\nwhen 1\n"): f"not a checkpoint of {ORIGIN!r} (origin, size, root, time)",
        note.replace("\n42\n", "\nxx\n"): "malformed checkpoint body: invalid literal for int() with base 10: 'xx'",
        note.replace(b64root, b64root[:8] + "!" + b64root[8:]): "malformed checkpoint body: Only base64 data is allowed",
        note.replace("\n42\n", "\n-1\n"): "malformed checkpoint size or root",
        note.replace("\n42\n", "\n042\n"): "malformed checkpoint size or root",
        note.replace(b64root, base64.b64encode(bytes(31)).decode()): "malformed checkpoint size or root",
    }  # fmt: skip
    for bad, why in cases.items():
        assert _opening_fails(bad, ORIGIN, pub) == why, bad
    assert _opening_fails(note, "other.test/ledger", pub) == other_origin


def test_signature_lines_of_other_keys_are_skipped_until_the_registrys() -> None:
    """A note may carry other signatures (co-signers, comments); only ours counts."""
    key, pub = _key()
    cp = sign_checkpoint(key, pub, ORIGIN, 42, bytes(32), 1)
    body, ours = cp.note.split("\n\n")
    dash, name_b64 = "\u2014 ", ours[2:].rstrip("\n")
    b64 = name_b64.rsplit(" ", 1)[1]
    raw = base64.b64decode(b64)
    others = [
        "a comment line",
        f"{dash}{ORIGIN} not*base64",
        f"{dash}witness.test {b64}",  # our key hash and signature under another name
        f"{dash}{ORIGIN} {base64.b64encode(raw[:4] + bytes(64) + b'x').decode()}",  # 69 bytes
        f"{dash}{ORIGIN} {base64.b64encode(b'wxyz' + raw[4:]).decode()}",  # another key's hash
    ]
    note = body + "\n\n" + "\n".join(others) + "\n" + ours
    assert open_checkpoint(note, ORIGIN, pub).tree_size == 42
    alone = body + "\n\n" + "\n".join(others) + "\n"
    assert (
        _opening_fails(alone, ORIGIN, pub) == "no signature by the registry's key on the checkpoint"
    )


def test_a_signature_must_be_strict_base64() -> None:
    key, pub = _key()
    note = sign_checkpoint(key, pub, ORIGIN, 42, bytes(32), 1).note
    b64 = note.rstrip("\n").rsplit(" ", 1)[1]
    junk = note.replace(b64, b64[:10] + "!" + b64[10:])
    assert (
        _opening_fails(junk, ORIGIN, pub) == "no signature by the registry's key on the checkpoint"
    )


def test_a_bad_signature_under_the_registrys_key_hash_is_refused_as_such() -> None:
    key, pub = _key()
    note = sign_checkpoint(key, pub, ORIGIN, 42, bytes(32), 1).note
    b64 = note.rstrip("\n").rsplit(" ", 1)[1]
    raw = base64.b64decode(b64)
    forged = note.replace(b64, base64.b64encode(raw[:4] + bytes(64)).decode())
    assert _opening_fails(forged, ORIGIN, pub) == "the checkpoint's signature does not verify"


def _identity_as_checkpoint(key: Ed25519PrivateKey, pub: bytes, size: int, root: bytes) -> str:
    """A note made of the registry's public identity proof (``GET /mesh/identity``, its
    key's signature of a nonce the caller chose) spelling a checkpoint of ``size``, ``root``."""
    from LLM_Mesh.core.b64url import decode, encode, length_prefixed
    from LLM_Mesh.core.registry_identity import IDENTITY_DOMAIN, IdentityProver

    url = "https://registry.example"
    nonce = f"\n{size}\n{base64.b64encode(root).decode()}\ntime 1\n".encode()
    answer = IdentityProver(key, [url]).answer(url, encode(nonce))
    assert isinstance(answer, dict)
    sig = decode(answer["signature"])
    assert sig is not None
    body = (IDENTITY_DOMAIN + length_prefixed(answer["origin"].encode())
            + length_prefixed(nonce)).decode()  # fmt: skip
    origin = body.split("\n", 1)[0]
    line = f"\u2014 {origin} " + base64.b64encode(key_hash(origin, pub) + sig).decode()
    return body + "\n" + line + "\n"


def test_an_identity_proof_of_the_same_key_is_no_checkpoint() -> None:
    """found 2026-12-05 (attack32): anyone gets the registry key's signature of a nonce of
    their choosing from the public ``GET /mesh/identity``; its bytes spell a checkpoint of
    any size and root whose origin is the identity domain with a NUL and length bytes. A
    verifier that takes the origin from the note (``receipt verify --ledger``) or from the
    registry's answer (``ledger verify``, over a path someone else controls) opened it as
    a checkpoint signed by the registry. It failed before the fix (opened: size 1,000,000)."""
    key, pub = _key()
    root = hashlib.sha256(b"forged").digest()
    note = _identity_as_checkpoint(key, pub, 1_000_000, root)
    with pytest.raises(BadCheckpoint, match="control character"):
        open_checkpoint(note, note.split("\n", 1)[0], pub)
    # the rule the signer keeps: an origin with a space, a '+', or a control character
    for origin in ("a b/ledger", "a+b/ledger", "a\x00b/ledger", "a\x85b/ledger"):
        body = f"{origin}\n1\n{base64.b64encode(root).decode()}\ntime 1\n"
        sig = key.sign(body.encode())
        note = body + f"\n\u2014 {origin} " + base64.b64encode(key_hash(origin, pub) + sig).decode()
        with pytest.raises(BadCheckpoint, match="not a checkpoint"):
            open_checkpoint(note + "\n", origin, pub)
    honest = sign_checkpoint(key, pub, "llm-mesh.local/ledger", 3, root, 7)  # still opens
    assert open_checkpoint(honest.note, "llm-mesh.local/ledger", pub).tree_size == 3


# written against the module's mutants (mut33, 2026-12-06): parse_log_vkey had no core test


def _pub_with_plus() -> bytes:
    """A public key whose verifier key's base64 holds a '+' (found by trying seeds)."""
    for i in range(256):
        pub = Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32).public_key()
        raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if "+" in vkey(ORIGIN, raw).split("+", 2)[2]:
            return raw
    raise AssertionError("no seed gave a '+'")


def test_a_log_key_parses_to_its_origin_and_public_key() -> None:
    _, pub = _key()
    assert parse_log_vkey(f"  {vkey(ORIGIN, pub)}\n") == (ORIGIN, pub)
    plus = _pub_with_plus()
    assert parse_log_vkey(vkey(ORIGIN, plus)) == (ORIGIN, plus)


def test_anything_else_is_refused_as_no_log_key_in_words() -> None:
    _, pub = _key()
    good = vkey(ORIGIN, pub)
    name, kh, b64 = good.split("+", 2)
    other = bytes([key_hash(ORIGIN, pub)[0] ^ 1]).hex() + kh[2:]
    bad = [
        "",
        "+" + kh + "+" + b64,
        f"{name}+{other}+{b64}",
        f"{name}+zz+{b64}",
        f"{name}+{kh}+{b64[:-4]}",
        f"{name}+{kh}+{b64}x",
        f"{name}+{kh}+" + base64.b64encode(b"\x02" + pub).decode(),
        f"{name}+{kh}+" + base64.b64encode(b"\x01" + pub + b"\x00").decode(),
        f"{name}.other+{kh}+{b64}",
        f"{name}+{kh}",
    ]
    for text in bad:
        with pytest.raises(ValueError) as caught:
            parse_log_vkey(text)
        assert str(caught.value) == (
            f"{text.strip()[:80]!r} is not a log key (<origin>+<key hash hex>+<base64 of 0x01 "
            "and the Ed25519 public key>)"
        ), text
    empty = f"+{key_hash('', pub).hex()}+{b64}"  # its hash right, but no origin
    outside = f"{name}+{kh}+{b64[:10]}!{b64[10:]}"  # a character outside base64
    for text in (empty, outside):
        with pytest.raises(ValueError, match="is not a log key"):
            parse_log_vkey(text)
    long = "x" * 100 + "+00+AA"
    with pytest.raises(ValueError, match=repr("x" * 80)):
        parse_log_vkey(long)


def test_another_message_of_the_key_is_refused_in_words() -> None:
    key, pub = _key()
    body = f"{ORIGIN}\n1\n{base64.b64encode(b'r' * 32).decode()}\ntime 1\n"
    note = (
        body
        + f"\n\u2014 {ORIGIN} "
        + base64.b64encode(key_hash(ORIGIN, pub) + key.sign(body.encode())).decode()
    )
    with pytest.raises(BadCheckpoint) as caught:
        open_checkpoint(note + "\n", "a b/ledger", pub)
    assert str(caught.value) == (
        "not a checkpoint: its text holds a control character or its origin a space or '+' (a "
        "signature of another message of the key's, such as an identity proof)"
    )
