"""The registry's own key: what the gateway signs forwarded requests with.

``$LLM_MESH_HOME/registry.key``: an Ed25519 private key, PEM (PKCS#8), mode 0600,
made at the registry's first start and never overwritten (as a node's ``node.key``).
Its public key and id go to every node in ``RegistrationAccepted``; nodes pin them
and require the gateway's signature on every inference request
(:mod:`LLM_Mesh.core.gateway_auth`).

**Several replicas** (one database, behind one address) must sign with one key, since a
node pins the key of the replica it registered with: give every replica the same file
(copy ``registry.key`` into each replica's ``$LLM_MESH_HOME``, or mount it there as a
secret). A replica with another key is refused by the nodes (401), and the gateway
fails over to another node; each refusal is logged by the node.

**Rotation.** Move the old key to ``$LLM_MESH_HOME/registry.key.previous`` (every
replica) and put the new one at ``registry.key``: every registration answer then carries
``key_rotation``, the previous key's signature naming the new key
(``core/key_rotation.py``), and a node that pinned the old key by trust on first use
moves its pin at its next registration. Each such statement is kept in
``registry.key.rotations`` (``registry/key_history.py``) and answers carry the chain, so a
node several rotations behind (at most 16) follows too; the previous key may go once
its statement is kept there. It signs nothing else; while it is there, nodes' beat tokens
made under it are taken too (``core/beat_mac.py``: replicas restarted on the new key take
those of the replicas not yet restarted), for ``previous_key_window_s``
(``LLM_MESH_PREVIOUS_KEY_WINDOW_S``, 15 minutes by default) from the first start with it
(:func:`previous_key_since`, rot41), then no longer; not at all where that start cannot be
kept (no ``registry.key.previous.since`` and its write failing, rot42). Staged
before the switch as ``registry.key.next`` on every replica, the new key's beat tokens are
taken by the replicas not yet switched too (``core/beat_mac.py``, rot41); it signs nothing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.secret_files import create_secret_file, replace_file, too_open

log = logging.getLogger(__name__)

REGISTRY_KEY_FILE = "registry.key"
PREVIOUS_KEY_FILE = "registry.key.previous"
SINCE_FILE = "registry.key.previous.since"
NEXT_KEY_FILE = "registry.key.next"


def registry_key_path(settings: Settings) -> Path:
    return settings.home / REGISTRY_KEY_FILE


def previous_key_path(settings: Settings) -> Path:
    return settings.home / PREVIOUS_KEY_FILE


def next_key_path(settings: Settings) -> Path:
    """The next rotation's key, staged: beat tokens under it are taken (rot41)."""
    return settings.home / NEXT_KEY_FILE


def load_previous_registry_key(path: Path) -> Ed25519PrivateKey | None:
    """The previous key at ``path`` (a rotation), or None when there is none; never made."""
    return load_existing_registry_key(path)


def previous_key_since(
    home: Path,
    previous: Ed25519PrivateKey,
    now: float,
    write: Callable[[Path, bytes], None] = replace_file,
) -> float | None:
    """When this replica first started with ``previous`` as ``registry.key.previous``: kept
    in ``registry.key.previous.since`` (JSON: that key's public key and the time; mode
    0600), written (``write``) at that first start and again only for another previous key
    (the next rotation), so a restart does not move it and nothing a holder of the old key
    can send does. An operator may write it beside the key (read as any other).

    ``None`` where it is not there for ``previous`` (or unreadable) and cannot be written
    (a full disk; ``registry serve`` refuses a read-only home before it gets here, and a full
    disk fails the start a step later, on ``settlement.holder``: newuser42), with a WARNING:
    ``now`` would open a window at each start for as long as the previous key is kept
    (found 2026-12-07, rot42), so the caller opens none
    (``core/previous_window.previous_tokens_until``)."""
    path = home / SINCE_FILE
    public = encode_public_key(public_key_of(previous))
    try:
        kept = json.loads(path.read_bytes()[:4096])
        since = kept["since"] if kept.get("previous_public_key") == public else None
        if isinstance(since, int | float) and math.isfinite(since):
            return float(since)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        log.warning("%s is unreadable (%s): written again", path, exc)
    body = {"previous_public_key": public, "since": now}
    try:
        write(path, (json.dumps(body) + "\n").encode())
    except OSError as exc:
        log.warning(
            "cannot keep when the rotation began in %s (%s): beat tokens made under "
            "registry.key.previous are not taken at all (each start would take them for a "
            "window of its own); to take them during a rolling rotation, make %s writable "
            "or write that file beside the key, e.g. %s",
            path,
            exc,
            home,
            json.dumps(body),
        )
        return None
    return now


def load_existing_registry_key(path: Path) -> Ed25519PrivateKey | None:
    """The key at ``path``, or None when there is none; never made
    (``llm-mesh registry public-key``)."""
    if not path.exists():
        return None
    return _load(path)


def load_or_create_registry_key(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``, made (mode 0600) when there is none; never overwritten."""
    if not path.exists():
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if create_secret_file(path, pem):
            log.info("made this registry's gateway key %s (mode 0600)", path)
            return fresh
    return _load(path)


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable Ed25519 key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    if too_open(path):
        log.warning("%s can be read by others: chmod 600 %s", path, path)
    return key
