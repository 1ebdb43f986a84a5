"""The node's served log: one line a request it ended, appended, size-bounded, rotated.

``$LLM_MESH_HOME/served.jsonl`` (``served_log`` in node.toml; a relative path is under
``$LLM_MESH_HOME``): a line per generation the node ended (answered, cancelled or failed),
:class:`~LLM_Mesh.core.served.Served` as JSON, what ``llm-mesh ledger statement --operator
--served FILE`` holds against the public ledger. Never the prompt or the output.

- **Append-only**: the file is opened ``O_APPEND`` (mode 0600) and each record is one
  ``write`` of a whole line, so a crash leaves at most one partial last line (the reader
  names and skips it).
- **Bounded**: when the file would pass ``max_bytes`` (``served_log_max_bytes``, default
  32 MiB, 65,000 to 100,000 requests: a line is about 330 bytes, 510 with the gateway's
  signature) it is renamed ``served.jsonl.1`` (``.1`` to ``.2``, ..., the oldest of
  ``keep`` old files, ``served_log_keep``, default 3, deleted) and a new one
  begun: at most ``(keep + 1) × max_bytes`` on disk. The reader takes the rotated files
  along (``served_files``).
- A write that fails (a full disk) is logged once (WARNING) and the request goes on: the
  log is the operator's evidence, never a reason to fail a request.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from LLM_Mesh.core.served import Served

__all__ = [
    "DEFAULT_KEEP", "DEFAULT_MAX_BYTES", "SERVED_FILE", "ServedLog", "served_files",
    "served_log_path",
]  # fmt: skip

log = logging.getLogger("LLM_Mesh.node")

SERVED_FILE = "served.jsonl"
DEFAULT_MAX_BYTES = 32 << 20
DEFAULT_KEEP = 3
MAX_KEEP = 100


def served_files(path: Path, keep: int = MAX_KEEP) -> list[Path]:
    """``path``'s rotated files that exist, oldest first, then ``path`` (if it exists)."""
    older = [p for n in range(keep, 0, -1) if (p := path.with_name(f"{path.name}.{n}")).is_file()]
    return older + ([path] if path.is_file() else [])


class ServedLog:
    """Appends :class:`Served` records to ``path`` (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        if max_bytes < 4096:
            raise ValueError("served_log_max_bytes is at least 4096")
        if not 0 <= keep <= MAX_KEEP:
            raise ValueError(f"served_log_keep is 0 to {MAX_KEEP}")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._size = 0
        self._failed = False
        self.written = 0
        self.wall_clock = wall_clock or time.time

    def now_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            p = self.path.with_name(f"{self.path.name}.{n}")
            if p.exists():
                p.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))

    def write(self, record: Served) -> bool:
        """Append ``record``; ``False`` when it could not be written (logged once)."""
        data = (record.to_line() + "\n").encode("utf-8")
        try:
            fd = self._open()
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
                fd = self._open()
            os.write(fd, data)
        except OSError as exc:
            self.close()
            if not self._failed:
                self._failed = True
                log.warning("could not write the served log %s: %s", self.path, exc)
            return False
        self._size += len(data)
        self.written += 1
        if self._failed:
            self._failed = False
            log.info("the served log %s is written again", self.path)
        return True

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def served_log_path(home: Path, configured: str) -> Path | None:
    """Where ``served_log`` (node.toml) puts the log: under ``home`` unless absolute;
    ``None`` for ``""`` (no log)."""
    if not configured:
        return None
    p = Path(configured).expanduser()
    return p if p.is_absolute() else home / p
