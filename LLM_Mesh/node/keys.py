"""The node's key file: ``$LLM_MESH_HOME/node.key`` (or ``key_file`` in node.toml).

An Ed25519 private key, PEM (PKCS#8, unencrypted), mode 0600, created once and
never overwritten (``secret_files.create_secret_file``). The node's id is derived
from its public key (``core.identity.node_id_for``). ``llm-mesh node keys init``
and ``setup-node-operator.sh`` create it; ``llm-mesh node start`` creates it when
it is missing and says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import encode_public_key, node_id_for, public_key_of
from LLM_Mesh.secret_files import create_secret_file, too_open, try_lock
from LLM_Mesh.text_files import unreadable

log = logging.getLogger(__name__)

KEY_FILE = "node.key"


@dataclass(frozen=True)
class NodeKey:
    key: Ed25519PrivateKey
    path: Path
    created: bool

    @property
    def node_id(self) -> str:
        return node_id_for(public_key_of(self.key))

    @property
    def public_key(self) -> str:
        return encode_public_key(public_key_of(self.key))


def key_path(settings: Settings, key_file: str | Path | None = None) -> Path:
    return Path(key_file).expanduser() if key_file else settings.home / KEY_FILE


def load_key(path: Path, then: str = "the node then gets a new id") -> Ed25519PrivateKey:
    """The key in ``path``; ``ValueError`` naming the file when it is not an Ed25519 key
    (``then``: what making a new one means, said in the error)."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # found 2026-12-06 (ux34): a folder was a traceback
        raise unreadable("the node key", path, exc) from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a readable Ed25519 key ({exc}); it is never overwritten: "
            f"move it away to make a new one ({then})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    if too_open(path):
        log.warning("%s can be read by others: chmod 600 %s", path, path)
    return key


def load_or_create_key(path: Path) -> NodeKey:
    """The key at ``path``, created (mode 0600) when there is none."""
    if not path.exists():
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if create_secret_file(path, pem):
            return NodeKey(fresh, path, created=True)
    return NodeKey(load_key(path), path, created=False)


@contextlib.contextmanager
def key_in_use(path: Path, url: str | None = None) -> Iterator[None]:
    """Hold ``<key>.lock`` (``flock``) while a node runs with the key at ``path``.

    Two nodes with one key are one node to the registry: the later registration takes
    the id over and the other node drops out of routing, with nothing said. A second
    ``llm-mesh node start`` on the same key raises ``ValueError`` saying so instead.
    Where no lock can be taken (no ``flock``, a read-only directory) nothing is checked.
    ``url``: where this machine reaches the node, written into the lock while it is held
    (:func:`running_node_url`: ``node pause|info|...`` find a node started with ``--port``
    and no node.toml; found 2026-12-05, they went to 8801) and emptied when it ends (and,
    with no ``url``, when it starts: a killed node's is not left).
    """
    lock = path.with_name(path.name + ".lock")
    try:
        fd = try_lock(lock)
    except (ImportError, OSError):  # no flock here, or a folder it cannot write
        yield
        return
    if fd is None:
        raise ValueError(
            f"another node is running with the key {path} ({lock} is held): two nodes "
            "with one key are one node to the registry, the later one taking the "
            "other's place. Give this node its own home: LLM_MESH_HOME=DIR in front of "
            "the command that starts it (./setup-node-operator.sh has no --home), or "
            "--home DIR (llm-mesh node start, up, demo); or its own key: --key-file FILE "
            "(llm-mesh node start) or key_file in node.toml"
        )
    try:  # no URL: what a killed node left there emptied (found 2026-12-07, review41b:
        # read as this node's own, ``node pause`` went to where the killed one listened)
        _write_url(fd, url or "")
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _write_url(fd: int, url: str) -> None:
    with contextlib.suppress(OSError):  # a lock it cannot write still locks
        os.ftruncate(fd, 0)
        os.pwrite(fd, url.encode("ascii", "replace"), 0)


def running_node_url(path: Path) -> str | None:
    """The URL a node running with the key at ``path`` wrote into its lock
    (:func:`key_in_use`); ``None`` when no node holds it (what a stopped one left is not
    read), none was written, or no lock can be tested here."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock here: nothing was locked either
        return None
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: a node runs with the key
            text = os.read(fd, 2048).decode("ascii", "replace").strip()
            return text if text.startswith(("http://", "https://")) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
