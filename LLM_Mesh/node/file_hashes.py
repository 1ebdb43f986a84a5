"""Model files' sha256, hashed once and remembered while the file stays the same.

A node declares each model file's sha256 (canaries compare it with verifiers'), so
it must hash the file; a 40 GB file takes minutes. :class:`HashCache` keeps what
it found in ``$LLM_MESH_HOME/models/.sha256-cache.json``::

    {"version": 1, "files": {"/abs/path.gguf": {"size": 4368439584,
        "mtime_ns": 1764680000000000000, "ino": 1234, "sha256": "<64 hex>"}}}

An entry counts only while the file's size, modification time (ns) and inode are
those it had when hashed: a file replaced, re-downloaded, grown or touched is
hashed again. A file that changed while it was hashed is not remembered. A file a
download verified records its hash here (``node/downloads.py``), so it is not
hashed a second time at the node's start.

The cache is a convenience, never a source of truth: an unreadable, malformed or
oversized cache counts as empty, a cache that cannot be written is skipped (the
hash is still right, only not remembered). It trusts the operator's own file
system: someone who can rewrite a model file keeping its size, mtime and inode
runs the node anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("LLM_Mesh.node")

CACHE_NAME = ".sha256-cache.json"
#: a cache bigger than this is not read (one entry is ~200 bytes)
MAX_CACHE_BYTES = 1 << 20
CHUNK = 1 << 20

Hasher = Callable[[Path], str]


def file_sha256(path: Path, chunk_size: int = CHUNK) -> str:
    """The file's sha256 (hex), read in ``chunk_size`` blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Stamp:
    """What must not change for a remembered hash to stand."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def _entry_sha(entry: Any, stamp: Stamp) -> str | None:
    if not isinstance(entry, dict):
        return None
    sha = entry.get("sha256")
    if (
        entry.get("size") == stamp.size
        and entry.get("mtime_ns") == stamp.mtime_ns
        and entry.get("ino") == stamp.ino
        and isinstance(sha, str)
        and len(sha) == 64
        and all(c in "0123456789abcdef" for c in sha)
    ):
        return sha
    return None


class HashCache:
    """sha256 of files, remembered in ``cache_path``; ``hasher`` does the hashing."""

    def __init__(self, cache_path: Path, hasher: Hasher = file_sha256) -> None:
        self.cache_path = Path(cache_path)
        self.hasher = hasher

    def _read(self) -> dict[str, Any]:
        try:
            with self.cache_path.open("rb") as f:
                raw = f.read(MAX_CACHE_BYTES + 1)
            if len(raw) > MAX_CACHE_BYTES:
                return {}
            data = json.loads(raw)
        except (OSError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) and data.get("version") == 1 else None
        return files if isinstance(files, dict) else {}

    def cached(self, path: Path) -> str | None:
        """The remembered sha256 of ``path`` if the file is unchanged since, else None."""
        path = Path(path).resolve()
        try:
            stamp = Stamp.of(path)
        except OSError:
            return None
        return _entry_sha(self._read().get(str(path)), stamp)

    def sha256(self, path: Path) -> str:
        """``path``'s sha256: remembered, or hashed now (and remembered)."""
        path = Path(path).resolve()
        before = Stamp.of(path)
        known = _entry_sha(self._read().get(str(path)), before)
        if known is not None:
            return known
        log.info(
            "hashing %s (%.1f GB) to check it; done once, remembered in %s",
            path,
            before.size / 1e9,
            self.cache_path,
        )
        digest = self.hasher(path)
        if Stamp.of(path) == before:
            self._write(path, before, digest)
        return digest

    def record(self, path: Path, sha256: str) -> None:
        """Remember ``sha256`` for ``path`` as it is now (the caller just verified it)."""
        path = Path(path).resolve()
        with contextlib.suppress(OSError):
            self._write(path, Stamp.of(path), sha256.lower())

    def _write(self, path: Path, stamp: Stamp, sha256: str) -> None:
        files = {k: v for k, v in self._read().items() if k != str(path) and Path(k).is_file()}
        files[str(path)] = {
            "size": stamp.size,
            "mtime_ns": stamp.mtime_ns,
            "ino": stamp.ino,
            "sha256": sha256,
        }
        body = json.dumps({"version": 1, "files": files}, indent=1, sort_keys=True)
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sha256-cache.", dir=self.cache_path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(body)
                os.replace(tmp, self.cache_path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            log.debug("could not remember the sha256 of %s in %s: %s", path, self.cache_path, e)


def hash_cache(models_dir: Path, hasher: Hasher = file_sha256) -> HashCache:
    """The cache of the models directory ``models_dir``."""
    return HashCache(Path(models_dir) / CACHE_NAME, hasher)
