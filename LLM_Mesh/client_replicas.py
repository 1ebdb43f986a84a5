"""Several gateway replicas for :class:`LLM_Mesh.client.MeshClient`: their list, and the
one that answered last, remembered across processes (the CLI's).

- :func:`gateway_urls`: ``"URL,URL"`` or a list → the URLs; :func:`own_path`: a path the
  client may join to each of them.
- :class:`ReplicaMemory`: a small file (the CLI's ``$LLM_MESH_HOME/gateway-replica.json``,
  :data:`FILE_NAME`) naming, per configured list of URLs, the replica that answered last and
  when; a client given it begins there for :data:`~LLM_Mesh.core.replica_memory.REMEMBER_S`
  (5 min), so a hung first replica costs one command its wait, not every command (found
  2026-12-05). The decisions are :mod:`LLM_Mesh.core.replica_memory`'s (a URL that was not
  configured is never used; an expired or unreadable file is as none). Writes go to a
  temporary file beside it, renamed over it (atomic: concurrent commands never see half a
  file; the last writer wins); the file is written only when its news changes, or to keep
  a replica in use remembered. A file that cannot be read or written changes nothing but
  the start (a DEBUG line). The seed API and other library users have no memory unless
  they pass one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from LLM_Mesh.core import replica_memory as rm
from LLM_Mesh.secret_files import make_private_dir

__all__ = ["FILE_NAME", "ReplicaMemory", "gateway_urls", "own_path"]

FILE_NAME = "gateway-replica.json"
log = logging.getLogger(__name__)


def gateway_urls(base_url: str | Sequence[str]) -> tuple[str, ...]:
    """``"URL,URL"`` or a list of URLs → the URLs, trailing ``/`` dropped."""
    parts = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    urls = tuple(u.strip().rstrip("/") for u in parts if u.strip())
    if not urls:
        raise ValueError("no gateway URL given")
    return urls


def own_path(path: str) -> str:
    """``path``, which the client joins to each gateway URL as text, when it starts with
    ``/``; else ``ValueError`` before anything is sent: one that does not can name another
    host with the URL (``https://R`` + ``.evil.example/x``, or ``@evil.example/x``: ``R``
    read as a user name), the client's credentials sent there (found 2026-12-07, review39:
    ``MeshClient.keyed_get``, public, sent the API key so)."""
    if not path.startswith("/"):
        raise ValueError(f"a path on the registry starts with /, not {path[:80]!r}")
    return path


class ReplicaMemory:
    """The replica that answered last, per list of URLs, in the file ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        remember_s: float = rm.REMEMBER_S,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self.remember_s = remember_s

    @classmethod
    def in_home(cls, home: Path) -> ReplicaMemory:
        """The CLI's: :data:`FILE_NAME` in ``home`` (``$LLM_MESH_HOME``)."""
        return cls(Path(home) / FILE_NAME)

    def _read(self) -> dict[str, rm.Answered]:
        try:
            with self.path.open("rb") as f:
                raw = f.read(rm.MAX_TEXT + 1)
            return rm.parse(raw.decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.debug("replica memory %s not read: %s", self.path, exc)
            return {}

    def start(self, urls: Sequence[str]) -> str | None:
        """The URL of ``urls`` to begin at (``None``: the first)."""
        if len(urls) < 2:
            return None
        return rm.start_at(urls, self._read(), self._clock(), self.remember_s)

    def answered(self, urls: Sequence[str], url: str) -> None:
        """``url`` of ``urls`` answered: remember it (written only when that is news)."""
        if len(urls) < 2:
            return
        now = self._clock()
        lists = self._read()
        if not rm.worth_writing(urls, lists, url, now, self.remember_s):
            return
        text = rm.dumps(rm.updated(lists, urls, url, now, self.remember_s))
        try:
            self._write(text)
        except OSError as exc:
            log.debug("replica memory %s not written: %s", self.path, exc)

    def _write(self, text: str) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            make_private_dir(folder)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
