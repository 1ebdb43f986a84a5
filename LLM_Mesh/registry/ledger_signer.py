"""The registry's ledger key and the checkpointer that signs tree heads with it.

The key: ``$LLM_MESH_HOME/registry.key``, an Ed25519 private key (PEM, PKCS#8), mode
0600, made once (``secret_files.create_secret_file``) and never overwritten. Its
public key is published in the store's ``ledger_keys`` (``GET /v1/ledger/keys``), so
several registries on one store each sign with their own key and a verifier knows
them all (or pins one: ``llm-mesh ledger verify --key``).

:class:`Checkpointer` signs a checkpoint (``core/checkpoint.py``) when the tree has
grown by ``every`` entries since the last one (woken by each append) or, if it grew
at all, every ``interval_s`` seconds. Two registries racing for one size both sign;
the first stored wins (one checkpoint per size). With :attr:`Checkpointer.keep` (the app
sets it: ``registry/ledger_mark.py``) each checkpoint it signs is kept beside
``registry.key`` before it is stored (published), and so is the store's newest when
another replica signed it: what the next start holds a restored store against. Before
that, :attr:`Checkpointer.durable` (the app sets it: ``registry/ledger_durable.py``) puts
the entries the checkpoint covers on the disk, so a power cut cannot leave the kept or
published checkpoint ahead of the store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from LLM_Mesh.core.checkpoint import Checkpoint, sign_checkpoint
from LLM_Mesh.core.gossip import EXPORT_FORMAT, export
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["Checkpointer", "public_key_text"]

log = logging.getLogger(__name__)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public key as standard base64 of its 32 raw bytes."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class Checkpointer:
    """Signs checkpoints of ``ledger`` (see the module docstring)."""

    def __init__(
        self,
        ledger: SqlLedger,
        key: Ed25519PrivateKey,
        origin: str,
        *,
        every: int = 1000,
        interval_s: float = 60.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if every < 1 or interval_s <= 0:
            raise ValueError("checkpoints need every >= 1 entries and interval_s > 0")
        self.ledger, self.key, self.origin = ledger, key, origin
        self.public_key = public_key_text(key)
        self._raw = base64.b64decode(self.public_key)
        self.every, self.interval_s, self._wall_clock = every, interval_s, wall_clock
        self._signed_size = -1
        self._published = False
        self._appended = False
        self._wake = asyncio.Event()
        self.round_log = RoundLog(log, "ledger checkpointer", wall_clock=wall_clock)
        self._signing = asyncio.Lock()  # the loop's, stop()'s and an API call's, one at a time
        self._task: asyncio.Task[None] | None = None
        # told of each checkpoint this process signs and stores (the witness pusher's
        # wake-up: it must not block, and an error in it does not undo the checkpoint)
        self.on_signed: Callable[[Checkpoint], None] | None = None
        self.last_signed: Checkpoint | None = None  # the newest this process signed and stored
        # given each checkpoint (``core/gossip.export``'s form) before it is stored, and the
        # store's newest signed elsewhere; an error in it stops the checkpoint (not stored).
        # Its flag: ``durable`` ran after the head was read (the entries synced already:
        # MarkFile.keep skips its own sync of the log; found 2026-12-05, two a checkpoint)
        self.keep: Callable[[dict[str, Any], bool], Awaitable[object]] | None = None
        self._kept_size = -1
        # run after the tree head is read and before the checkpoint is kept or published:
        # the entries it covers made durable (ledger_durable.py); an error stops it too
        self.durable: Callable[[], Awaitable[object]] | None = None

    def note_append(self, size: int) -> None:
        """Called after each append: wake the loop once ``every`` entries are unsigned."""
        self._appended = True
        if self._signed_size < 0 or size - self._signed_size >= self.every:
            self._wake.set()

    async def ensure_published(self) -> None:
        """Put this registry's public key in the store's ``ledger_keys`` (once)."""
        if not self._published:
            await self.ledger.add_key(self.public_key, datetime.now(timezone.utc))
            self._published = True

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the tree as it is now, unless its size is signed already (by this process,
        or by another replica on the same store: then ``None`` too)."""
        async with self._signing:
            return await self._checkpoint()

    async def _checkpoint(self) -> Checkpoint | None:
        latest = await self.ledger.latest_checkpoint()
        size, root = await self.ledger.head()
        if latest is not None:
            self._signed_size = max(self._signed_size, latest.tree_size)
            if self.keep is not None and latest.tree_size > self._kept_size:
                await self.keep({"format": EXPORT_FORMAT, "registry": None, "origin": self.origin,
                                 **latest.to_json()}, False)  # fmt: skip
                self._kept_size = latest.tree_size
        if size == 0 or size <= self._signed_size:
            return None
        await self.ensure_published()
        if self.durable is not None:  # the entries on the disk before anyone sees the head
            await self.durable()
        time_us = int(self._wall_clock() * 1_000_000)
        cp = sign_checkpoint(self.key, self._raw, self.origin, size, root, time_us)
        if self.keep is not None:  # kept before it is public: a restore can't get past it
            await self.keep(export(cp, self.public_key, None), self.durable is not None)
            self._kept_size = max(self._kept_size, size)
        stored = await self.ledger.add_checkpoint(cp, self.public_key)
        self._signed_size = max(self._signed_size, size)
        if not stored:  # another replica signed this size first: its note is the one kept
            return None
        self.last_signed = cp
        if self.on_signed is not None:
            try:
                self.on_signed(cp)
            except Exception:
                log.exception("telling of a signed checkpoint failed")
        return cp

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            try:
                await self.checkpoint()
            except Exception as exc:  # a bad moment of the database must not end the loop
                self.round_log.failed(exc, "ledger checkpoint failed", "trying again later")
            else:
                self.round_log.ok()

    def round_logs(self) -> Iterable[RoundLog]:
        """The checkpointer's loop (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-checkpointer")

    async def stop(self) -> None:
        """Stop the loop and sign what this process appended and is unsigned, once."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._appended:
            try:
                await self.checkpoint()
            except Exception:
                log.exception("the last ledger checkpoint failed")
