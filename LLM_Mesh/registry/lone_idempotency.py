"""A lone registry's keyed SDK attempts stay repeats across its restart.

A registry on SQLite runs alone and keeps its idempotency keys in its process
(``registry/idempotency.py``); replicas on PostgreSQL share them through the store
(``registry/shared_idempotency.py``). A keyed client's OpenAI SDK attempt has an implicit
key (``core/sdk_retry.py``): its retry within ``sdk_retry_window_s`` (60 s) of its end is
replayed instead of run. Found 2026-12-05 (``sdkstore32``, docs/security.md "Clients"): a
retry that reached the registry after it restarted (a deploy, a crash, ``systemctl
restart``: the SDK's connection error on the way, then its retry) found no key and ran on
a node, paid a second time. A client's own id is found in the ledger after a restart
(``registry/paid_ids.py``: refused 409, its answer not kept); an implicit key had nothing.

:class:`LoneIdempotency` is that process cache, plus the **ends of implicit keys** kept in
the store's ``idempotency_keys`` (the replicas' table, unused on a lone registry): the row
the replicas would write (``shared_idempotency.end_record``: the answer sealed under
``registry.key``, named by a keyed hash of the key, held the window from the end), written
**in the background**, batched (one transaction for the ends that came meanwhile, and the
expired rows deleted in it: :meth:`~LLM_Mesh.registry.ports.KeptRequestKeys.keep_request_keys`),
never awaited by a request; the app's shutdown waits for them (:meth:`close`). Those
waiting are bounded as the cache is (``max_entries`` rows, ``max_bytes`` of sealed
answers; past them an end is not kept, its retry after a restart runs: found 2026-12-05,
``review32``, held without bound while a write hung). Once the
last row written has expired the expired rows are deleted (:meth:`LoneIdempotency._purge`;
at a start, once the rows of the process before have): no sealed answer stays in the store
past its window but while the registry is stopped. For the window
after a start, a retry (count >= 1) of a key this process has not seen reads its row: a
``done`` one unexpired is replayed (``X-Mesh-Replayed``) or refused 409 as in the process
(``shared_idempotency.replay_record``: a stream not kept, an answer too large, one paid
without an answer); none runs as before. After the window no row of an earlier process can
be live: no read at all. A store that fails the read runs the retry as before; one that
fails a write loses that end (logged).

What a crash loses: an end still unwritten when the process died (the answer was sent
before its row's commit, a few milliseconds), and an attempt running then (no row is
written when an attempt starts: a start would cost every keyed SDK request a write), so
its retry runs again, as before this module. A first attempt (count 0) after the start
always runs and its end replaces the row; its retries never read the store's older row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from starlette.responses import Response

from LLM_Mesh.core.answer_seal import AnswerSeal
from LLM_Mesh.core.scope_names import IDEMPOTENCY_KEYS, ScopeNames
from LLM_Mesh.core.sdk_retry import DEFAULT_WINDOW_S, is_implicit
from LLM_Mesh.registry.idempotency import DuplicateRequest, IdempotencyCache
from LLM_Mesh.registry.ports import IdempotencyRecord, KeptRequestKeys
from LLM_Mesh.registry.shared_idempotency import end_record, replay_record
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["LoneIdempotency"]

log = logging.getLogger(__name__)

OWNER = "lone"  # the rows' owner (no replicas: no beat, no id)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class LoneIdempotency(IdempotencyCache):
    """See the module docstring."""

    def __init__(
        self,
        store: KeptRequestKeys,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        retry_window_s: float = DEFAULT_WINDOW_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(clock, retry_window_s=retry_window_s)
        self.store = store
        self.wall_clock = wall_clock
        self.sleep = sleep  # the purge's wait (tests: a clock of their own)
        self.started = wall_clock()
        # the app sets the registry key's (as for replicas): until then, this process's own
        self.seal = AnswerSeal.random()
        self.names = ScopeNames.random(IDEMPOTENCY_KEYS)
        self._owned: set[str] = set()  # implicit keys run here: their ends are kept
        self._fresh_here: set[str] = set()  # first attempts since the start: no store read
        self._pending: dict[str, IdempotencyRecord] = {}  # row name -> its end, to write
        self._waiting = 0  # bytes of their sealed answers (at most max_bytes: _keep_end)
        self._dropped = False  # an end not kept since the last write began (logged once)
        self._writer: asyncio.Task[None] | None = None
        # when the last row written expires (the rows of the process before: by the end of
        # the window after this start); the purge deletes the expired rows then
        self._expires_last = self.started + retry_window_s
        self._purger: asyncio.Task[None] | None = None

    def start(self) -> None:
        """At the app's start (its store open): purge the expired rows once the rows of
        the process before have expired (:meth:`_purge`)."""
        self._purge_later()

    def _purge_later(self) -> None:
        if self._purger is None or self._purger.done():
            self._purger = asyncio.get_running_loop().create_task(self._purge())

    async def _purge(self) -> None:
        """Delete the kept rows once the last one written has expired: a sealed answer is
        never left in the store past its window (the writes delete expired rows too)."""
        while True:
            while (wait := self._expires_last - self.wall_clock()) > 0:
                await self.sleep(wait + 1.0)
            try:
                await self.store.purge_request_keys(_utc(self.wall_clock()))
            except Exception:
                log.warning("could not delete expired SDK attempts' ends", exc_info=True)
            if self._expires_last <= self.wall_clock():  # none written while it purged
                return

    def _early(self) -> bool:
        """Whether a row of the process before this one may still be live (the window
        after the start); past it, forget the first attempts seen in it."""
        if self.wall_clock() - self.started < self.retry_window_s:
            return True
        self._fresh_here.clear()
        return False

    async def begin(self, key: str, stream: bool) -> Response | None:
        if not is_implicit(key) or self.holds(key) or not self._early() or key in self._fresh_here:
            answer = await super().begin(key, stream)
            if answer is None and is_implicit(key):
                self._owned.add(key)
            return answer
        await super().begin(key, stream)  # new here: held while the store is read
        try:
            answer = await self._earlier(key, stream)
        except DuplicateRequest as exc:
            self.refuse(key, exc)
            raise
        except Exception:
            log.warning("could not read an SDK attempt's kept end; running it", exc_info=True)
            answer = None
        except BaseException:
            super().abandon(key)
            raise
        if answer is None:
            self._owned.add(key)
            return None
        super().finish(key, answer)  # local duplicates get the same replay
        if stream:
            self.keep_replayed(key, answer)
        return answer

    async def _earlier(self, key: str, stream: bool) -> Response | None:
        """The kept end of ``key`` from before the start: its answer (or raise 409);
        ``None`` when there is none, or it has expired."""
        h = self.names.digest(key)
        rec = await self.store.get_request_key(h)
        if rec is None or rec.state != "done" or rec.expires_at <= _utc(self.wall_clock()):
            return None
        return replay_record(key, rec, stream, self.seal)

    async def begin_fresh(self, key: str, stream: bool) -> bool:
        fresh = await super().begin_fresh(key, stream)
        if fresh:
            self._owned.add(key)
            if self._early():  # its retries refer to it, never to an older row
                self._fresh_here.add(key)
        return fresh

    def finish(self, key: str, response: Response | None, *, paid: bool = False) -> None:
        super().finish(key, response, paid=paid)
        if key in self._owned and not self.is_open(key):
            self._owned.discard(key)
            self._keep_end(key)

    def stream_ended(self, key: str) -> None:
        super().stream_ended(key)
        if key in self._owned:
            self._owned.discard(key)
            self._keep_end(key)

    def abandon(self, key: str) -> None:
        super().abandon(key)
        self._owned.discard(key)

    def refuse(self, key: str, refusal: DuplicateRequest) -> None:
        super().refuse(key, refusal)
        self._owned.discard(key)

    def _keep_end(self, key: str) -> None:
        """Write ``key``'s end, if it is kept (a 429/5xx freed it: nothing), in the
        background with the others that come meanwhile."""
        if self.kept(key) is None:
            return
        h = self.names.digest(key)
        rec = end_record(self, key, h, OWNER, self.wall_clock(), None, self.seal)
        size = len(rec.body or b"")
        if h not in self._pending and (
            len(self._pending) >= self.max_entries or self._waiting + size > self.max_bytes
        ):  # found 2026-12-05 (review32): held without bound while a write hung
            if not self._dropped:  # once until the next write
                log.warning("SDK attempts' ends waiting for the store past the cache's "
                            "bounds: not kept (their retries after a restart run)")  # fmt: skip
            self._dropped = True
            return
        old = self._pending.get(h)
        self._waiting += size - (len(old.body or b"") if old is not None else 0)
        self._pending[h] = rec
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending, self._waiting = list(self._pending.values()), {}, 0
            self._dropped = False
            try:
                await self.store.keep_request_keys(batch, _utc(self.wall_clock()))
            except Exception:  # a retry of these runs after a restart, as before
                log.warning("could not keep %d SDK attempts' ends", len(batch), exc_info=True)
                continue
            last = max(rec.expires_at for rec in batch).timestamp()
            self._expires_last = max(self._expires_last, last)
            self._purge_later()

    async def flush(self) -> None:
        """Wait until the ends given so far are written (or failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait((self._writer,))

    async def close(self) -> None:
        """At shutdown: :meth:`flush`, then stop the purge (the rows still in their window
        stay for the next start: a retry that reaches it is replayed)."""
        await self.flush()
        purger, self._purger = self._purger, None
        await cancel_and_wait(purger)
