"""Beat tokens every replica of one registry can check: a MAC under a key they all share.

A beat token (``registry/beat_tokens.py``) used to be a random secret of the process that
answered it, so a node whose next beat reached another replica or ``--workers`` worker
sent a token unknown there and, past the counts of forged beats, was told to register
again (beatkey39). A token is now

    base64url( version (1 byte) | expiry (5 bytes, Unix seconds, big-endian) | HMAC )

where the HMAC-SHA256 covers the version, the expiry and the node id, under a key derived
by HKDF-SHA256 (its own ``info``: :data:`BEAT_TOKENS`) from the registry's Ed25519 seed
(``registry.key``, which every replica of one registry holds: ``registry/gateway_key.py``):
:class:`~LLM_Mesh.core.scope_names.ScopeNames`' keyed hash, as the shared rate-limit and
idempotency names.
So any replica checks any replica's token with one HMAC and no store read; a token is
good only for its node id (which is its key's: ``core/identity.node_id_for``), only
until its expiry, and only at a registry holding the same key. 51 characters: what a
node keeps and sends (``node/beat_token.py``: 16 to 64 base64url characters).

**Rotation** (beatrot40). A registry holding ``registry.key.previous`` (a rotation:
``registry/gateway_key.py``) makes tokens under its current key only, and takes tokens
under either: a token that does not hold under the current key is checked once more
under the previous one (a second HMAC, compared in constant time too, only for such a
token). So while replicas restart one by one on the new key, a token made by a replica
still on the old key holds at a rotated one; a token a rotated replica made does not hold
at a replica still on the old key (it cannot know the new key): there the node is told
to register again, once, and beats on with that replica's token. Once
``registry.key.previous`` is removed the old key's tokens are refused as any other's.

**A staged next key** (rot41). A replica still on the old key cannot know the new key,
unless it is given it before the switch: ``registry.key.next`` (docs/deploy.md, "Rotating
``registry.key``", step 0) is loaded at start for beat tokens only: its tokens are taken
(one more HMAC, only for a token the current key refuses), none is made under it, it signs
nothing. Staged on every replica first, the rolling switch then refuses no token either
way.

**The previous key's window** (rot41). A rotation is often made because the old key
leaked, and whoever holds it could make tokens for every node id (each spending that
node's 30 verifies a minute, or locking it out: ``registry/beat_tokens.py``) for as long
as ``registry.key.previous`` stayed. Its tokens are therefore taken only until
:func:`previous_tokens_until` (``core/previous_window.py``): ``previous_key_window_s``
(``LLM_MESH_PREVIOUS_KEY_WINDOW_S``, default :data:`PREVIOUS_KEY_TOKENS_S`, 15 minutes; at
most a day, rot42) after the rotation began at this replica
(``registry/gateway_key.previous_key_since``: the first start with that previous key, kept
in ``registry.key.previous.since``, so a later restart does not reopen it, and nothing a
holder of the old key sends can move it; where that stamp cannot be kept, a home that cannot
be written, no window is opened at all, rot42). Past it they are refused as any other
key's; the previous key still signs the rotation statement (``key_history.py``).

``cryptography``'s HKDF and the standard library's HMAC; nothing is hand-made.
"""

from __future__ import annotations

import hmac
import math
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import decode, encode
from LLM_Mesh.core.previous_window import PREVIOUS_KEY_TOKENS_S as PREVIOUS_KEY_TOKENS_S
from LLM_Mesh.core.previous_window import previous_tokens_until as previous_tokens_until
from LLM_Mesh.core.scope_names import ScopeNames

__all__ = [
    "BEAT_TOKENS",
    "PREVIOUS_KEY_TOKENS_S",
    "TOKEN_CHARS",
    "BeatMac",
    "previous_tokens_until",
]

BEAT_TOKENS = b"llm-mesh/beat-token/v1"
_VERSION = 1
_EXPIRY_BYTES = 5
_MAC_BYTES = 32
_TOKEN_BYTES = 1 + _EXPIRY_BYTES + _MAC_BYTES
TOKEN_CHARS = math.ceil(_TOKEN_BYTES * 4 / 3)  # 51, unpadded


class BeatMac:
    """Makes and checks beat tokens under one key (see the module docstring)."""

    __slots__ = ("_names", "_previous", "_staged", "previous_until")

    def __init__(
        self,
        secret: bytes,
        previous: bytes | None = None,
        previous_until: float | None = None,
        staged: bytes | None = None,
    ) -> None:
        self._names = ScopeNames(secret, BEAT_TOKENS)  # HKDF of ``secret``, HMAC under it
        # the next rotation's key, staged: its tokens taken, none made (module docstring)
        self._staged = None if staged is None else ScopeNames(staged, BEAT_TOKENS)
        # a rotation's previous key: its tokens taken until ``previous_until``, none made
        self._previous = None if previous is None else ScopeNames(previous, BEAT_TOKENS)
        if previous is not None and previous_until is None:
            raise ValueError("a previous key's tokens are taken until a time: previous_until")
        self.previous_until = -math.inf if previous_until is None else previous_until

    @classmethod
    def of_registry_key(
        cls,
        key: Ed25519PrivateKey,
        previous: Ed25519PrivateKey | None = None,
        previous_until: float | None = None,
        staged: Ed25519PrivateKey | None = None,
    ) -> BeatMac:
        """The tokens every replica holding this ``registry.key`` makes and takes; with
        ``previous`` (``registry.key.previous``), those its replicas made are taken too,
        until ``previous_until`` (:func:`previous_tokens_until`); with ``staged``
        (``registry.key.next``), those of the replicas already rotated to it."""
        old = None if previous is None else previous.private_bytes_raw()
        new = None if staged is None else staged.private_bytes_raw()
        return cls(key.private_bytes_raw(), old, previous_until, new)

    @property
    def has_previous(self) -> bool:
        """A previous key is held (its window open or not)."""
        return self._previous is not None

    @classmethod
    def random(cls) -> BeatMac:
        """Tokens no other process takes (until the registry key is known)."""
        return cls(os.urandom(32))

    @staticmethod
    def _mac(names: ScopeNames, head: bytes, node_id: str) -> bytes:
        return bytes.fromhex(names.digest(head.hex() + node_id))  # head: fixed length

    def make(self, node_id: str, expires_at: float) -> str:
        """``node_id``'s token, good until ``expires_at`` (Unix seconds, rounded up)."""
        head = bytes([_VERSION]) + math.ceil(expires_at).to_bytes(_EXPIRY_BYTES, "big")
        return encode(head + self._mac(self._names, head, node_id))

    def holds(self, node_id: str, token: str | None, now: float) -> bool:
        """``token`` was made under this key (or the previous one, where given and ``now``
        is before ``previous_until``, or the staged one, where given) for ``node_id`` and is
        not expired at ``now`` (each MAC compared in constant time)."""
        if not token or len(token) != TOKEN_CHARS:
            return False
        raw = decode(token)
        if raw is None or len(raw) != _TOKEN_BYTES or raw[0] != _VERSION:
            return False
        head, mac = raw[: 1 + _EXPIRY_BYTES], raw[1 + _EXPIRY_BYTES :]
        if now >= int.from_bytes(head[1:], "big"):
            return False  # expired: no HMAC made
        keys = [self._names]
        if self._previous is not None and now < self.previous_until:
            keys.append(self._previous)
        if self._staged is not None:
            keys.append(self._staged)
        return any(hmac.compare_digest(mac, self._mac(k, head, node_id)) for k in keys)
