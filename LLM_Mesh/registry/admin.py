"""The admin key: who may manage operators, revoke nodes and run health-check passes.

The store keeps the SHA-256 of one admin key, so every registry process and the
admin CLI on that database agree on it. :func:`ensure_admin_key` (registry
start-up, and the admin CLI) settles which key that is:

- ``$LLM_MESH_ADMIN_KEY`` set: its hash becomes the store's (setting it rotates the key);
- else ``$LLM_MESH_HOME/admin.key`` exists: the store takes its hash if it has none;
- else, when the store has none either: a new key is made, written to
  ``$LLM_MESH_HOME/admin.key`` (mode 0600) and handed back once to be printed.

HTTP admin calls carry it as ``Authorization: Bearer <admin key>``
(:func:`check_admin`); a missing or wrong key is 401 ``invalid_credential``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import hash_secret, new_secret, secret_matches
from LLM_Mesh.errors import InvalidCredential
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.secret_files import admin_key_path, create_secret_file, read_admin_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminKeyStatus:
    key: str | None  # the key this process holds (env or file), if any
    created: bool  # made just now: print it once
    matches_store: bool  # the key held is the store's


async def ensure_admin_key(
    settings: Settings, store: Store, *, env_rotates: bool = True
) -> AdminKeyStatus:
    """Make sure the store has an admin key; see the module docstring.

    ``env_rotates=False`` (the admin CLI): ``$LLM_MESH_ADMIN_KEY`` is only checked
    against the store's key, never made the store's key over another one.
    """
    now = datetime.now(timezone.utc)
    if settings.admin_key and env_rotates:
        await store.set_admin_key_hash(hash_secret(settings.admin_key), now, replace=True)
        return AdminKeyStatus(settings.admin_key, created=False, matches_store=True)
    key = read_admin_key(settings)
    created = False
    if key is None and await store.get_admin_key_hash() is None:
        fresh = new_secret("lma")
        if create_secret_file(admin_key_path(settings), (fresh + "\n").encode()):
            key, created = fresh, True
        else:  # another process made the file meanwhile
            key = read_admin_key(settings)
    if key is not None:
        await store.set_admin_key_hash(hash_secret(key), now, replace=False)
    stored = await store.get_admin_key_hash()
    ok = secret_matches(key, stored)
    if key is not None and not ok:
        log.warning(
            "the admin key held (LLM_MESH_ADMIN_KEY or %s) is not this store's",
            admin_key_path(settings),
        )
    return AdminKeyStatus(key, created=created and ok, matches_store=ok)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def check_admin(headers: Mapping[str, str], store: Store) -> None:
    """Raise 401 unless the request carries the store's admin key."""
    token = bearer(headers)
    if token is None:
        raise InvalidCredential(
            "this is an admin operation: send the admin key as 'Authorization: Bearer <key>' "
            "(LLM_MESH_ADMIN_KEY, or the registry's $LLM_MESH_HOME/admin.key)"
        )
    if not secret_matches(token, await store.get_admin_key_hash()):
        raise InvalidCredential("wrong admin key")


async def add_operator(store: Store, name: str, *, replace: bool = False) -> str | None:
    """A new operator with a fresh token (only its hash is stored); the token, to show once,
    or ``None`` when the name is taken (``replace``: give it a new token instead)."""
    token = new_secret("lmo")
    added = await store.add_operator(
        name, hash_secret(token), datetime.now(timezone.utc), replace=replace
    )
    return token if added else None
