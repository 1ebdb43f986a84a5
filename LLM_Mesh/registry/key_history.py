"""The rotation statements a registry announces: ``registry.key.previous`` and the chain
kept in ``$LLM_MESH_HOME/registry.key.rotations``.

At start a registry with ``registry.key.previous`` (the operator's rotation: the old key
moved aside, a new ``registry.key``) makes the statement that key signs naming the current
one (``core/key_rotation.py``), and appends it to the chain in ``registry.key.rotations``
(JSON: a list of statements, oldest first; public, no secret in it), which then ends at
the current key (``core/key_chain.py``: at most ``MAX_CHAIN_LINKS`` links, the newest
kept). Every registration answer carries the chain (``key_rotations``) and its last link
(``key_rotation``, what a node older than the chain reads), so a node any number of
rotations behind, up to the bound, follows. The file is rewritten only when a link is
added (a new file renamed over it); a chain that does not end at the current key (a lost
``registry.key``: nothing signed the key made after it) is announced by no one and left
as it is, with a WARNING; so is a ``registry.key.previous`` that already signed the move to
another key in the chain (still there when the key after it was lost): its statement naming
the current key would fork the chain, which nodes refuse, so it is not made. The same layout serves one step (``registry.key.previous``
alone, as before) and several replicas: each makes the same link from the same key files,
and a replica given ``registry.key.rotations`` announces the chain without the previous
key (which may then be removed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.key_chain import MAX_CHAIN_LINKS, chain_to, gateway_name, link_of
from LLM_Mesh.core.key_rotation import rotation_statement
from LLM_Mesh.registry.gateway_key import load_previous_registry_key, previous_key_path
from LLM_Mesh.secret_files import replace_file

log = logging.getLogger("LLM_Mesh.registry.gateway_key")

ROTATIONS_FILE = "registry.key.rotations"
_MAX_FILE_BYTES = 64 * 1024  # MAX_CHAIN_LINKS statements are ~4 KiB


def rotations_path(settings: Settings) -> Path:
    return settings.home / ROTATIONS_FILE


def read_rotations(path: Path) -> list[dict[str, str]]:
    """The links kept at ``path`` (none when there is no file); unreadable or garbled:
    a WARNING and none."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("%s is unreadable (%s): no rotation chain from it", path, exc)
        return []
    try:
        if len(data) > _MAX_FILE_BYTES:
            raise ValueError(f"over {_MAX_FILE_BYTES} bytes")
        value = json.loads(data)
        if not isinstance(value, list):
            raise ValueError("not a list")
    except ValueError as exc:
        log.warning("%s is not a list of rotation statements (%s): ignored", path, exc)
        return []
    return [link for link in map(link_of, value) if link is not None]


def write_rotations(path: Path, chain: list[dict[str, str]]) -> None:
    """Keep ``chain``: a new file beside ``path`` (this process's), renamed over it; mode
    0600, as the home's other files (found 2026-12-07: the umask's 0644)."""
    replace_file(path, (json.dumps(chain, indent=1) + "\n").encode())


def key_rotations(settings: Settings, key: Ed25519PrivateKey) -> list[dict[str, str]]:
    """The chain of rotation statements this registry announces (oldest first, the last
    naming ``key``); empty when none does."""
    current = encode_public_key(public_key_of(key))
    path = rotations_path(settings)
    kept = read_rotations(path)
    links = list(kept)
    previous_path = previous_key_path(settings)
    previous = load_previous_registry_key(previous_path)
    if previous is not None:
        statement = rotation_statement(previous, key)
        signer = statement["previous_public_key"]
        if signer == current:
            log.warning("%s is the current registry.key: no rotation to announce", previous_path)
        elif links and links[-1] == statement:
            pass  # made at an earlier start
        elif any(link["previous_public_key"] == signer for link in links):
            # it vouched for another key already (the one after it, since lost or replaced):
            # a second statement would fork the chain (refused by every node) and drop the
            # links after it, stranding the nodes that followed them
            log.warning(
                "%s (gateway %s) already signed the move to another key in %s: it is not the "
                "key this registry.key replaced (a lost registry.key?); no statement of it "
                "naming this key is made",
                previous_path,
                gateway_name(signer),
                path,
            )
        else:
            links.append(statement)
    chain = chain_to(links, current)
    if chain and chain != kept:
        try:
            write_rotations(path, chain)
        except OSError as exc:  # announced all the same, by this process
            log.warning("cannot keep the rotation chain in %s: %s", path, exc)
    if chain:
        log.info(
            "registration answers announce the rotation from gateway %s (%d link%s, at most "
            "%d: %s%s)",
            gateway_name(chain[0]["previous_public_key"]),
            len(chain),
            "" if len(chain) == 1 else "s",
            MAX_CHAIN_LINKS,
            path,
            f", {previous_path}" if previous is not None else "",
        )
    elif links:
        log.warning(
            "the rotation statements (%s) do not lead to this registry's key, gateway %s (a "
            "lost registry.key signs nothing): none is announced, and a node that pinned an "
            "earlier key needs its operator (llm-mesh node keys forget-gateway)",
            path,
            registry_id_for(public_key_of(key)),
        )
    return chain
