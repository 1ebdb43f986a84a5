"""A witness's key and state, in ``$LLM_MESH_HOME`` (one witness per home: ``witness.lock``).

- ``witness.key``: Ed25519, PEM, mode 0600, made once and never overwritten (as a node's);
- ``witness_state.json``: per log origin, the size, root and note of the last checkpoint
  this witness cosigned (``core/witness.Cosigned``), written whole, synced and renamed
  into place (:func:`save_state`) before a cosignature leaves: a restart reads what was
  cosigned last, never less, so the witness never rolls back;
- ``witness.lock``: an ``flock`` held while a witness runs (a round or ``--listen``), so
  two processes never race on the state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from LLM_Mesh.core.witness import Cosigned, witness_key
from LLM_Mesh.node.keys import load_key
from LLM_Mesh.secret_files import create_secret_file, make_private_dir, replace_file

__all__ = [
    "KEY_FILE",
    "LOCK_FILE",
    "STATE_FILE",
    "STATE_FORMAT",
    "default_name",
    "load_or_create_witness_key",
    "load_state",
    "read_logs",
    "save_state",
]

KEY_FILE = "witness.key"
STATE_FILE = "witness_state.json"
LOCK_FILE = "witness.lock"
STATE_FORMAT = "llm-mesh/witness-state/v1"


def load_or_create_witness_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The witness key at ``path`` (made, mode 0600, when there is none) and whether it
    was made now. An existing file is never replaced."""
    if not path.exists():
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if create_secret_file(path, pem):
            return fresh, True
    return load_key(path, "verifiers must then trust the new key"), False


def default_name(key: Ed25519PrivateKey) -> str:
    """A name for a witness that was given none: its key's ID under a fixed prefix."""
    return "llm-mesh-witness/" + witness_key(key, "w").public_key.hex()[:16]


def read_logs(path: Path, file_format: str) -> dict[str, Any]:
    """The ``logs`` (per log origin) of a JSON file this witness writes, in
    ``file_format`` (empty: no file yet); ``ValueError`` "PATH is not what the witness
    wrote (why)" for any other content."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise _not_ours(path, exc) from None
    if not isinstance(data, dict):
        raise _not_ours(path, "not a JSON object")
    if data.get("format") != file_format:
        raise _not_ours(path, f"format {data.get('format')!r}")
    logs = data.get("logs")
    if not isinstance(logs, dict):
        raise _not_ours(path, "no logs object")
    return logs


def _not_ours(path: Path, why: object) -> ValueError:
    return ValueError(f"{path} is not what the witness wrote ({why})")


def load_state(path: Path) -> dict[str, Cosigned]:
    """Per origin, the last checkpoint this witness cosigned (empty: none yet)."""
    logs = read_logs(path, STATE_FORMAT)
    try:
        return {
            origin: Cosigned(int(v["size"]), bytes.fromhex(v["root"]), str(v["note"]))
            for origin, v in logs.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _not_ours(path, exc) from None


def save_state(path: Path, state: dict[str, Cosigned]) -> None:
    """Write the state whole, synced, renamed into place (never half written)."""
    data = {
        "format": STATE_FORMAT,
        "logs": {
            o: {"size": c.size, "root": c.root.hex(), "note": c.note} for o, c in state.items()
        },
    }
    make_private_dir(path.parent)
    # synced, renamed, the folder synced; mode 0600 as the home's other files (found
    # 2026-12-07, review40: the umask's 0644, warned of by secret_files.open_files_warning)
    replace_file(path, json.dumps(data, indent=1, sort_keys=True).encode())
