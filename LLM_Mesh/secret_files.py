"""Secret files in ``$LLM_MESH_HOME``: created once with mode 0600, never overwritten.

Used for the node's key (``node.key``, ``LLM_Mesh.node.keys``) and the registry's
admin key (``admin.key``). :func:`create_secret_file` uses ``O_CREAT | O_EXCL``, so
two processes racing to create one cannot both win and an existing file is never
replaced. :func:`try_lock`: the home's lock files (``settlement.lock``, ``node.key.lock``),
held with ``flock`` while a process runs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from LLM_Mesh.config import Settings

ADMIN_KEY_FILE = "admin.key"


def create_secret_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file readable by its owner only; ``False`` if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)  # whatever the umask said
    return True


def too_open(path: Path) -> bool:
    """Can the group or others read ``path``?"""
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def admin_key_path(settings: Settings) -> Path:
    return settings.home / ADMIN_KEY_FILE


def read_admin_key(settings: Settings) -> str | None:
    """The admin key: ``$LLM_MESH_ADMIN_KEY``, else ``$LLM_MESH_HOME/admin.key``, else None."""
    if settings.admin_key:
        return settings.admin_key
    path = admin_key_path(settings)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    return text or None


def try_lock(path: Path) -> int | None:
    """``path`` opened (mode 0600; it and its folder made if missing) and locked with
    ``flock`` without waiting: the descriptor to close when done (that releases it, as the
    process's exit does), or ``None`` when another process holds it. ``OSError`` if it
    cannot be opened; ``ImportError`` where there is no ``flock``."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another process
        os.close(fd)
        return None
    return fd
