"""The app's start-up with its keys: the registry key and what it signs with, the admin key.

:func:`start_keys` runs first in the lifespan of
:func:`~LLM_Mesh.registry.app.create_registry_app`: one registry key
(``$LLM_MESH_HOME/registry.key``, made once, or injected; ``gateway_key.py``) signs what the
gateway forwards, the receipts, the identity answers, the 403 ``revoked`` answers to nodes
and (sealed) the shared idempotency answers, and keys the nodes' beat tokens; its chain of rotations (``key_history.py``) goes with every registration answer;
the store's admin key is settled (``admin.py``), a new one announced once and the URLs it
may be sent to recorded beside it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.answer_seal import AnswerSeal
from LLM_Mesh.core.beat_mac import BeatMac, previous_tokens_until
from LLM_Mesh.core.gateway_auth import GatewaySigner, registry_id_for
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.previous_window import check_previous_window
from LLM_Mesh.core.receipt import ReceiptSigner
from LLM_Mesh.core.registry_identity import IdentityProver
from LLM_Mesh.core.revocation_proof import RevocationSigner
from LLM_Mesh.core.scope_names import IDEMPOTENCY_KEYS, ScopeNames
from LLM_Mesh.registry.admin import ensure_admin_key
from LLM_Mesh.registry.gateway_key import (
    load_existing_registry_key,
    load_or_create_registry_key,
    load_previous_registry_key,
    next_key_path,
    previous_key_path,
    previous_key_since,
    registry_key_path,
)
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.key_history import key_rotations
from LLM_Mesh.registry.lone_idempotency import LoneIdempotency
from LLM_Mesh.registry.node_auth import SignedNodeAuth
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from LLM_Mesh.secret_files import admin_key_path, record_admin_key_registry

__all__ = ["start_keys"]

log = logging.getLogger("LLM_Mesh.registry.app")  # its lines as before the split


async def start_keys(
    runtime: Runtime,
    health: HealthChecker,
    *,
    settings: Settings,
    gateway_key: Ed25519PrivateKey | None,
    served_urls: Sequence[str],
    announce: Callable[[str], None] | None,
    wall_clock: Callable[[], float],
) -> Ed25519PrivateKey:
    """Set up ``runtime``'s signers (and ``health``'s registry id) from the registry key,
    settle the admin key; returns the registry key (the ledger's checkpoints sign with it)."""
    # a window past its bounds, settings built in code too: refused at every start, not
    # only at a rotation's (core/previous_window.py)
    check_previous_window(settings.previous_key_window_s)
    # one registry key (``$LLM_MESH_HOME/registry.key``, or injected): it signs what
    # the gateway forwards and the ledger's checkpoints, each with its own prefix
    key = gateway_key
    if key is None:
        path = registry_key_path(settings)
        key = await asyncio.to_thread(load_or_create_registry_key, path)
    if runtime.gateway is None:
        runtime.gateway = GatewaySigner(key, wall_clock)
    chain = await asyncio.to_thread(key_rotations, settings, key)
    runtime.key_rotations = chain
    runtime.key_rotation = chain[-1] if chain else None
    if runtime.receipts is None:
        runtime.receipts = ReceiptSigner(key, wall_clock)
    # signs a client's nonce for its own URLs: those it serves at, else its settings'
    runtime.identity = IdentityProver(key, served_urls or settings.registry_urls)
    # its 403 revoked, signed for the node, with the chain a node pinned earlier follows
    runtime.revocations = RevocationSigner(key, chain)
    if runtime.shared_limits is not None:  # Redis' bucket names: no client's address
        runtime.shared_limits.names = ScopeNames.of_registry_key(key)
    if runtime.shared_in_flight is not None:  # the same names for the in-flight counts
        runtime.shared_in_flight.names = ScopeNames.of_registry_key(key)
    if runtime.shared_share is not None:  # and for the models' anonymous shares
        runtime.shared_share.names = ScopeNames.of_registry_key(key)
    # beat tokens any replica (any worker) of this registry takes (registry/beat_tokens.py);
    # mid-rotation those of the replicas still on the previous key too (core/beat_mac.py)
    previous = await asyncio.to_thread(load_previous_registry_key, previous_key_path(settings))
    if previous is not None and previous.private_bytes_raw() == key.private_bytes_raw():
        previous = None  # the current key itself (key_history.py warns)
    until = None
    if previous is not None:  # for a while after the rotation began here only (rot41)
        now, window_s = wall_clock(), settings.previous_key_window_s
        # None: that start cannot be kept (a read-only home): no window at all (rot42)
        since = await asyncio.to_thread(previous_key_since, settings.home, previous, now)
        until = previous_tokens_until(since, now, window_s)
        if since is not None:  # else previous_key_since said why
            _log_previous_window(until, now, window_s)
    staged = await asyncio.to_thread(load_existing_registry_key, next_key_path(settings))
    if staged is not None and staged.private_bytes_raw() == key.private_bytes_raw():
        staged = None  # switched to already: the current key
    elif staged is not None and previous is not None and _same(staged, previous):
        staged = None  # else the previous key's tokens taken past its window (review41)
        log.warning(
            "registry.key.next is registry.key.previous: not staged (the old key's beat "
            "tokens are taken only for its window after the rotation); stage a new key"
        )
    elif staged is not None:  # the next rotation's key: its tokens taken, none made (rot41)
        log.info(
            "beat tokens made under registry.key.next (gateway %s) are taken too: staged for "
            "the next rotation, it signs nothing",
            registry_id_for(public_key_of(staged)),
        )
    mac = BeatMac.of_registry_key(key, previous, until, staged)
    runtime.beat_tokens.use(mac, wall_clock, settings.heartbeat_expiry_s)
    if isinstance(runtime.idempotency, SharedIdempotency | LoneIdempotency):  # kept sealed
        runtime.idempotency.seal = AnswerSeal.of_registry_key(key)
        runtime.idempotency.names = ScopeNames.of_registry_key(key, IDEMPOTENCY_KEYS)
    if isinstance(runtime.node_auth, SignedNodeAuth):
        # nodes have keys: a health check passes only with the node key's signature
        # of its challenge, bound to this gateway's id (health.py). Tests' plain-id
        # nodes (TrustingNodeAuth) have no keys, and are checked without one.
        health.registry_id = runtime.gateway.registry_id
    log.info(
        "gateway %s, public key %s (nodes may pin it: registry_public_key in node.toml)",
        runtime.gateway.registry_id,
        runtime.gateway.public_key,
    )
    # a key made at a try whose write was lost is announced at the next (start_retry.py)
    admin = await ensure_admin_key(settings, runtime.store, made=runtime.admin_made)
    await asyncio.to_thread(
        _record_admin_key_registry, settings, served_urls, runtime.identity.public_key
    )
    if admin.created and admin.key is not None:
        (announce or partial(_print_admin_key, where=admin_key_path(settings)))(admin.key)
        runtime.admin_made.discard(admin.key)  # once
    return key


def _same(a: Ed25519PrivateKey, b: Ed25519PrivateKey) -> bool:
    return a.private_bytes_raw() == b.private_bytes_raw()


def _log_previous_window(until: float, now: float, window_s: float) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    if now < until:
        log.info(
            "beat tokens made under registry.key.previous are taken until %s (%s after the "
            "rotation began here: registry.key.previous.since), then no longer",
            when,
            f"{window_s / 60:g} minutes",
        )
    else:
        log.info(
            "beat tokens made under registry.key.previous are no longer taken (since %s); it "
            "still signs the rotation statement",
            when,
        )


def _record_admin_key_registry(settings: Settings, served: Sequence[str], key: str) -> None:
    """Which registry ``admin.key`` is for (its URLs and public key ``key``): sent only there
    (``secret_files.admin_key_for``), once it proved it holds the key (``/mesh/identity``)."""
    try:
        record_admin_key_registry(settings, served, key)
    except OSError as exc:  # a read-only home: the file's key is then sent nowhere
        log.warning("could not record the admin key's registry URLs: %s", exc)


def _print_admin_key(key: str, where: Path) -> None:
    """Said with the file's own path (found 2026-12-07, newuser45: ``$LLM_MESH_HOME/admin.key``
    literally, a variable no default home or ``--home`` sets)."""
    print(
        f"llm-mesh: made this registry's admin key (shown once; kept in {where}, mode 0600): {key}",
        file=sys.stderr,
        flush=True,
    )
