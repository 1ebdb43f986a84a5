"""The gateway key a node learned (trust on first use): ``$LLM_MESH_HOME/gateway.pin``.

Without node.toml ``registry_public_key`` the node pins the key of its first accepted
registration answer and keeps it here (one line, the key as the registry sends it; mode
0600), so a later answer, a restart included, cannot replace it: a registration answer
naming another key is refused and logged (``node/gateway_guard.py``), unless it carries
a ``key_rotation`` statement the pinned key signed naming the answer's key
(``core/key_rotation.py``), or a chain of them from the pinned key (``core/key_chain.py``):
then the node moves the pin itself (:func:`replace_pin`: a new 0600 file renamed over this
one). The operator moves the pin (a lost registry.key, which signs nothing; a node more
rotations behind than the registry keeps; a new registry) with ``llm-mesh node keys
forget-gateway``, which removes this file; the
next accepted registration pins again, a running node included.
"""

from __future__ import annotations

import os
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.secret_files import create_secret_file

PIN_FILE = "gateway.pin"
FORGET_COMMAND = "llm-mesh node keys forget-gateway"


def pin_path(settings: Settings) -> Path:
    return settings.home / PIN_FILE


def read_pin(path: Path) -> str | None:
    """The learned key, or None when there is none (``OSError`` when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return text.strip()


def forget_pin(path: Path) -> str | None:
    """Remove the learned pin; the key it held, or None when there was none."""
    key = read_pin(path)
    path.unlink(missing_ok=True)
    return key


def replace_pin(path: Path, key: str) -> None:
    """Keep ``key`` as the pin (the first, or a rotation the pinned key signed): written to
    a new 0600 file beside it, then renamed over it, so a crash leaves the old pin or the
    new one."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    create_secret_file(tmp, (key + "\n").encode())
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
