"""A cosigning witness of the ledger's checkpoints (C2SP ``tlog-witness``, ``tlog-cosignature``).

A witness keeps, per log origin, the size and root of the last checkpoint it cosigned.
Shown a newer signed checkpoint and an RFC 9162 consistency proof from its last size, it
cosigns only if the checkpoint is signed by a key it trusts for that origin and the proof
shows the new tree extends the one it cosigned. A registry that shows the witness two
histories (a split view) or an older tree (a rollback) gets a refusal, not a
cosignature; a verifier that requires the witness's cosignature on the checkpoint it
checks (``llm-mesh ledger verify --witness``) then cannot be shown a history the witness
did not see, unless every witness it trusts was fooled.

:func:`decide` is the witness's decision, pure (the caller fetches the checkpoint and
the proof and keeps the state); its refusals follow ``c2sp.org/tlog-witness``'s checks,
named: ``unknown origin`` (404 there), ``signature`` (403), ``rollback`` (the new size
is below the cosigned one: 400 / 409 there), ``stale`` (the old size is not the cosigned
size: 409), ``malformed`` (a proof of more than 63 hashes: 400) and ``split view`` (the
same size with another root, 409; or a consistency proof that does not verify, 422).

A cosignature (``cosignature/v1``, Ed25519) is a signed-note signature line::

    \u2014 <witness name> base64(key ID (4 bytes) || timestamp (u64, big-endian) || signature (64))

over the message ``"cosignature/v1\\n" "time <timestamp>\\n"`` followed by the checkpoint's
whole note body (extension lines included); the timestamp is POSIX seconds. The key ID
is ``SHA-256(<name> || "\\n" || 0x04 || public key)[:4]``; the witness's verifier key
text (what verifiers pin) is ``<name>+<key ID, hex>+<base64(0x04 || public key)>``.
:func:`cosign` writes one, :func:`cosigners` finds the valid ones on a note.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, open_checkpoint, split_note
from LLM_Mesh.core.merkle import EMPTY_ROOT
from LLM_Mesh.core.merkle_verify import verify_consistency

__all__ = [
    "COSIGN",
    "FUTURE_S",
    "MALFORMED",
    "MAX_PROOF",
    "ROLLBACK",
    "SIGNATURE",
    "SPLIT_VIEW",
    "STALE",
    "UNKNOWN_ORIGIN",
    "BadCosignature",
    "Cosigned",
    "Decision",
    "WitnessKey",
    "Witnessed",
    "cosign",
    "cosigners",
    "decide",
    "key_id",
    "open_cosignature",
    "parse_vkey",
    "witness_key",
    "witnessed",
]

COSIGNATURE_V1 = b"\x04"  # the signed-note key type of an Ed25519 cosignature/v1 key
_HEADER = "cosignature/v1\n"
_DASH = "\u2014 "
_RAW = 4 + 8 + 64  # key ID, timestamp, Ed25519 signature
MAX_PROOF = 63  # tlog-witness: at most 63 consistency proof lines
MAX_NAME = 128
FUTURE_S = 600  # a cosignature timestamped further ahead than this counts for nothing
_MAX_TIMESTAMP = (1 << 63) - 1

COSIGN = "cosign"
UNKNOWN_ORIGIN, SIGNATURE, ROLLBACK = "unknown origin", "signature", "rollback"
STALE, MALFORMED, SPLIT_VIEW = "stale", "malformed", "split view"


class BadCosignature(ValueError):
    """A cosignature (or a witness's key text) that is malformed or does not verify."""


def key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || "\\n" || 0x04 || public key)[:4]`` (tlog-cosignature, Ed25519)."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME or not name.isprintable() or " " in name or "+" in name:
        raise BadCosignature(
            f"a witness name is 1 to {MAX_NAME} printable characters without spaces or '+'"
        )


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public identity: its name and Ed25519 public key (32 bytes)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise BadCosignature("a witness key is a 32-byte Ed25519 public key")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The signed-note verifier key text: ``<name>+<key ID hex>+<base64(0x04 || key)>``."""
        raw = base64.b64encode(COSIGNATURE_V1 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"


def witness_key(key: Ed25519PrivateKey, name: str) -> WitnessKey:
    """The public identity of the witness holding ``key`` under ``name``."""
    return WitnessKey(name, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def parse_vkey(text: str) -> WitnessKey:
    """A witness's verifier key text (:attr:`WitnessKey.vkey`); :class:`BadCosignature` if
    it is not one of a ``cosignature/v1`` Ed25519 key or its key ID does not match."""
    name, sep1, rest = text.strip().partition("+")
    kid, sep2, b64 = rest.partition("+")
    try:
        raw = base64.b64decode(b64, validate=True)
        wanted = bytes.fromhex(kid)
    except ValueError:
        raw, wanted = b"", b""
    if not sep1 or not sep2 or len(raw) != 33 or raw[:1] != COSIGNATURE_V1 or len(wanted) != 4:
        raise BadCosignature(
            f"{text.strip()[:80]!r} is not a witness key (<name>+<key ID hex>+<base64 of 0x04 "
            "and the Ed25519 public key>: what `llm-mesh ledger witness` prints)"
        )
    wk = WitnessKey(name, raw[1:])
    if wk.key_id != wanted:
        raise BadCosignature(f"witness key {name!r}: its key ID does not match its name and key")
    return wk


def _message(body: str, timestamp: int) -> bytes:
    return f"{_HEADER}time {timestamp}\n{body}".encode()


def cosign(key: Ed25519PrivateKey, name: str, note: str, timestamp: int) -> str:
    """The ``cosignature/v1`` signature line (ending in ``\\n``) of ``key`` under ``name``
    on the checkpoint ``note`` (its body: signature lines are not signed), at
    ``timestamp`` (POSIX seconds)."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("a cosignature's timestamp is 0 to 2**63 - 1")
    body, _ = split_note(note)
    wk = witness_key(key, name)
    sig = key.sign(_message(body, timestamp))
    raw = wk.key_id + struct.pack(">Q", timestamp) + sig
    return f"{_DASH}{name} {base64.b64encode(raw).decode()}\n"


def open_cosignature(line: str, body: str, witness: WitnessKey) -> int | None:
    """The timestamp of the signature ``line`` (``<name> <base64>``, no dash) if it is
    ``witness``'s cosignature on ``body``; ``None`` if it is another key's line;
    :class:`BadCosignature` if it is ``witness``'s and does not verify."""
    name, _, b64 = line.strip().rpartition(" ")
    if name != witness.name:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return None
    if len(raw) != _RAW or not hmac.compare_digest(raw[:4], witness.key_id):
        return None
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    if timestamp > _MAX_TIMESTAMP:
        raise BadCosignature(f"witness {name}: a timestamp beyond 2**63 - 1")
    try:
        Ed25519PublicKey.from_public_bytes(witness.public_key).verify(
            raw[12:], _message(body, timestamp)
        )
    except InvalidSignature:
        raise BadCosignature(f"witness {name}'s cosignature does not verify") from None
    return int(timestamp)


def cosigners(
    note: str, witnesses: Sequence[WitnessKey], *, not_after: int | None = None
) -> dict[str, int]:
    """The witnesses among ``witnesses`` that validly cosigned ``note``: their ``vkey`` →
    the newest cosignature's timestamp. A line that names a witness and does not verify
    counts for nothing (as an unknown key's line does); so does a timestamp later than
    ``not_after`` (POSIX seconds; a cosignature from the future)."""
    body, lines = split_note(note)
    found: dict[str, int] = {}
    for wk in witnesses:
        for line in lines:
            try:
                ts = open_cosignature(line, body, wk)
            except BadCosignature:
                continue
            if ts is None or (not_after is not None and ts > not_after):
                continue
            found[wk.vkey] = max(ts, found.get(wk.vkey, ts))
    return found


@dataclass(frozen=True)
class Witnessed:
    """What a verifier that requires witnesses makes of the checkpoints it checked
    (:func:`witnessed`): ``ok`` or not, the newest checkpoint with enough cosignatures
    (``None``: none has), its cosigners (``vkey`` → timestamp), and how many checked
    checkpoints came after it."""

    ok: bool
    checkpoint: Checkpoint | None
    cosigned: Mapping[str, int]
    newer: int  # checked checkpoints newer than ``checkpoint`` (all of them when None)
    age_s: int  # now − the ``needed``-th newest cosignature on ``checkpoint`` (0: none)


def witnessed(
    newest_first: Sequence[Checkpoint],
    witnesses: Sequence[WitnessKey],
    needed: int,
    now: int,
    max_age_s: int,
) -> Witnessed:
    """The newest of ``newest_first`` (the checkpoints a verifier checked the entries
    against, newest first) that ``needed`` of ``witnesses`` validly cosigned.

    ``ok`` when it is the newest checkpoint, or when the checkpoints after it are the
    registry's since the witnesses' last round: its ``needed``-th newest cosignature is at
    most ``max_age_s`` old. A registry that shows this verifier a history its witnesses
    refused can then only show the witnessed prefix of it, and only for ``max_age_s``:
    after that, ``ok`` is false however the entries check out."""
    for i, cp in enumerate(newest_first):
        found = cosigners(cp.note, witnesses, not_after=now + FUTURE_S)
        if len(found) < needed:
            continue
        age = max(0, now - sorted(found.values(), reverse=True)[needed - 1])
        return Witnessed(i == 0 or age <= max_age_s, cp, found, i, age)
    return Witnessed(False, None, {}, len(newest_first), 0)


# -- the witness's decision -----------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    """A witness's state for one origin: the last checkpoint it cosigned."""

    size: int
    root: bytes
    note: str  # the signed note it cosigned (evidence, should the log fork)


@dataclass(frozen=True)
class Decision:
    """``kind``: :data:`COSIGN` or the refusal's name; ``checkpoint``: the new checkpoint,
    opened (``None`` when its origin or signature did not check out)."""

    kind: str
    message: str
    checkpoint: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        return self.kind == COSIGN


def _origin(note: str) -> str:
    return note.partition("\n")[0]


def _short(size: int, root: bytes) -> str:
    return f"size {size} (root {root.hex()[:16]}…)"


def decide(
    last: Cosigned | None,
    note: str,
    log_keys: Mapping[str, Sequence[bytes]],
    old_size: int,
    proof: Sequence[bytes],
) -> Decision:
    """Cosign the checkpoint ``note`` or refuse (see the module docstring).

    ``last``: this witness's last cosigned checkpoint of the note's origin (``None``: it
    never cosigned one); ``log_keys``: per origin, the log's Ed25519 public keys (raw)
    this witness trusts; ``old_size``: the size ``proof`` starts from (the caller's idea
    of ``last.size``); ``proof``: the RFC 9162 consistency proof from ``old_size`` to the
    note's size."""
    origin = _origin(note)
    keys = log_keys.get(origin)
    if not keys:
        return Decision(UNKNOWN_ORIGIN, f"no log key is trusted for origin {origin[:100]!r}")
    cp: Checkpoint | None = None
    why = "no signature by a trusted log key"
    for pub in keys:
        try:
            cp = open_checkpoint(note, origin, pub)
            break
        except BadCheckpoint as exc:
            if "does not verify" in str(exc) or why.startswith("no signature"):
                why = str(exc)
        except ValueError as exc:  # a trusted key that is not an Ed25519 key
            why = f"a trusted log key is not usable: {exc}"
    if cp is None:
        return Decision(SIGNATURE, f"the checkpoint's signature does not check out: {why}")
    last_size = last.size if last is not None else 0
    new = _short(cp.tree_size, cp.root_hash)
    if last is not None and cp.tree_size < last.size:
        return Decision(
            ROLLBACK,
            f"the log signed {new}, smaller than the {_short(last.size, last.root)} this "
            "witness cosigned: a rollback of history",
            cp,
        )
    if old_size < 0 or old_size > cp.tree_size or len(proof) > MAX_PROOF:
        return Decision(
            MALFORMED, f"old size {old_size} and a proof of {len(proof)} hashes for {new}", cp
        )
    if old_size != last_size:
        return Decision(
            STALE,
            f"a proof from size {old_size}, but this witness last cosigned size {last_size}",
            cp,
        )
    if cp.tree_size == 0 and not hmac.compare_digest(cp.root_hash, EMPTY_ROOT):
        return Decision(SPLIT_VIEW, "a checkpoint of size 0 without the empty tree's root", cp)
    if last is None:  # nothing cosigned: the empty tree is a prefix of every tree
        if proof:
            return Decision(MALFORMED, "a consistency proof from the empty tree is empty", cp)
        return Decision(COSIGN, f"{new}: the first checkpoint this witness cosigns", cp)
    if cp.tree_size == last.size:
        if proof or not hmac.compare_digest(cp.root_hash, last.root):
            return Decision(
                SPLIT_VIEW,
                f"the log signed two roots for size {last.size}: {last.root.hex()} cosigned "
                f"before, {cp.root_hash.hex()} now",
                cp,
            )
        return Decision(COSIGN, f"{new}: the checkpoint this witness cosigned before", cp)
    first_root = last.root if last.size else EMPTY_ROOT
    if not verify_consistency(last.size, cp.tree_size, first_root, cp.root_hash, proof):
        return Decision(
            SPLIT_VIEW,
            f"the log's consistency proof from the cosigned {_short(last.size, last.root)} to "
            f"{new} does not verify: not one history (a fork, or history rewritten)",
            cp,
        )
    return Decision(COSIGN, f"{new} extends the cosigned size {last.size} (consistency proof)", cp)
