"""Signed checkpoints of the ledger, in the C2SP formats (https://c2sp.org).

A checkpoint is a ``tlog-checkpoint`` body signed as a ``signed-note``::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n
    time <microseconds since 1970-01-01 UTC>\\n      (one extension line)
    \\n
    \\u2014 <key name> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>\\n

The signature is over the body (the first four lines, each ending in ``\\n``). The
key hash is the first 4 bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)``
(signed-note's Ed25519 type); the key's ``vkey`` text is
``<name>+<key hash, hex>+<base64(0x01 || public key)>``. The origin (and key name)
is the registry's ``ledger_origin`` setting.

:func:`sign_checkpoint` is the writer's side; :func:`open_checkpoint` checks a note
against a public key and returns what it says, or raises :class:`BadCheckpoint`.

The registry's key (``registry.key``) signs more than checkpoints, and one of its
signatures is public on request: ``GET /mesh/identity`` signs ``llm-mesh/v1/registry-
identity\0`` + the registry's URL + a nonce of the caller's choosing
(``core/registry_identity.py``), and such bytes can spell a checkpoint body of any size
and root whose first line is that domain, its NUL and two length bytes (found
2026-12-05, ``attack32``). So :func:`open_checkpoint` takes only a body a checkpoint can
be: no control character but its line ends (every other message the key signs holds a
NUL after its domain, or is no body of four lines ending in a line end: gateway requests,
key agreements), and an origin :func:`sign_checkpoint` could have signed (no space, no
``+``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from LLM_Mesh.core.merkle import HASH_SIZE

__all__ = [
    "BadCheckpoint",
    "Checkpoint",
    "key_hash",
    "open_checkpoint",
    "parse_log_vkey",
    "sign_checkpoint",
    "split_note",
    "vkey",
]

_ED25519 = b"\x01"
_DASH = "\u2014 "
# what no checkpoint body holds: a control character but its line ends (C0, DEL, C1)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


class BadCheckpoint(ValueError):
    """A checkpoint note that is malformed or whose signature does not check out."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    time_us: int
    note: str  # the whole signed note


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def vkey(name: str, public_key: bytes) -> str:
    """The signed-note verifier key text for ``public_key`` under ``name``."""
    return f"{name}+{key_hash(name, public_key).hex()}+{base64.b64encode(_ED25519 + public_key).decode()}"


def parse_log_vkey(text: str) -> tuple[str, bytes]:
    """A log's verifier key text (:func:`vkey`): its name (the origin) and public key;
    ``ValueError`` if it is not an Ed25519 signed-note key whose hash matches."""
    name, _, rest = text.strip().partition("+")
    kh, _, b64 = rest.partition("+")
    try:
        raw, want = base64.b64decode(b64, validate=True), bytes.fromhex(kh)
    except ValueError:
        raw, want = b"", b""
    if not name or len(raw) != 33 or raw[:1] != _ED25519 or key_hash(name, raw[1:]) != want:
        raise ValueError(f"{text.strip()[:80]!r} is not a log key (<origin>+<key hash hex>+"
                         "<base64 of 0x01 and the Ed25519 public key>)")  # fmt: skip
    return name, raw[1:]


def _body(origin: str, tree_size: int, root_hash: bytes, time_us: int) -> str:
    if not origin or "\n" in origin or " " in origin or "+" in origin:
        raise ValueError("a checkpoint origin is one non-empty line without spaces or '+'")
    if len(root_hash) != HASH_SIZE or tree_size < 0:
        raise ValueError("a checkpoint has a 32-byte root and a size >= 0")
    root = base64.b64encode(root_hash).decode()
    return f"{origin}\n{tree_size}\n{root}\ntime {time_us}\n"


def sign_checkpoint(
    key: Ed25519PrivateKey, public_key: bytes, origin: str, tree_size: int, root_hash: bytes,
    time_us: int,
) -> Checkpoint:  # fmt: skip
    body = _body(origin, tree_size, root_hash, time_us)
    sig = key.sign(body.encode())
    line = f"{_DASH}{origin} {base64.b64encode(key_hash(origin, public_key) + sig).decode()}\n"
    return Checkpoint(origin, tree_size, root_hash, time_us, body + "\n" + line)


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's body (each line ending in ``\\n``) and its signature lines (those
    starting with ``\u2014 ``, the dash and space cut off: ``<key name> <base64>``)."""
    body, sep, sigs = note.partition("\n\n")
    if not sep or not body:
        raise BadCheckpoint("not a signed note (no blank line before the signatures)")
    lines = [line[len(_DASH) :] for line in sigs.split("\n") if line.startswith(_DASH)]
    return body + "\n", lines


def open_checkpoint(note: str, origin: str, public_key: bytes) -> Checkpoint:
    """Check ``note``'s signature by ``public_key`` under ``origin``; what it says."""
    body, sig_lines = split_note(note)
    if _CONTROL.search(body) or not origin or " " in origin or "+" in origin:
        # found 2026-12-05 (attack32): another message the key signs, read as a checkpoint
        raise BadCheckpoint(
            "not a checkpoint: its text holds a control character or its origin a space "
            "or '+' (a signature of another message of the key's, such as an identity proof)"
        )
    lines = body.split("\n")[:-1]
    if len(lines) != 4 or lines[0] != origin or not lines[3].startswith("time "):
        raise BadCheckpoint(f"not a checkpoint of {origin!r} (origin, size, root, time)")
    try:
        size, root = int(lines[1]), base64.b64decode(lines[2], validate=True)
        time_us = int(lines[3][5:])
    except ValueError as exc:
        raise BadCheckpoint(f"malformed checkpoint body: {exc}") from None
    if size < 0 or len(root) != HASH_SIZE or lines[1] != str(size):
        raise BadCheckpoint("malformed checkpoint size or root")
    want = key_hash(origin, public_key)
    pub = Ed25519PublicKey.from_public_bytes(public_key)
    for line in sig_lines:
        name, _, b64 = line.rpartition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            continue
        if name != origin or len(raw) != 68 or raw[:4] != want:
            continue
        try:
            pub.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise BadCheckpoint("the checkpoint's signature does not verify") from None
        return Checkpoint(origin, size, root, time_us, note)
    raise BadCheckpoint("no signature by the registry's key on the checkpoint")
