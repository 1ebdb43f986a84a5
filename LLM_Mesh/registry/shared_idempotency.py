"""Client request ids run at most once across every replica on one store.

:class:`SharedIdempotency` is the process's :class:`~LLM_Mesh.registry.idempotency.
IdempotencyCache` (duplicates inside this process behave exactly as there: they wait on
the running request and share its answer) backed by the store's ``idempotency_keys``
table (:class:`~LLM_Mesh.registry.ports.ReplicaState`), keyed by a keyed hash of the same
``path scope id [prompt digest]`` string (HMAC-SHA256 under a key derived from
``registry.key``: :class:`~LLM_Mesh.core.scope_names.ScopeNames`, set by the app as
:attr:`SharedIdempotency.names`), so every replica holding that key names an id's row alike,
and whoever reads the table cannot confirm a guessed address, id and prompt (found
2026-12-05: an unkeyed SHA-256; rows of that version are never matched by this one and
expire in their 10 min):

- A key new to this process is **claimed** in the store (one ``INSERT ... ON CONFLICT``):
  the replica whose insert wins runs the request; its answer is written to the row when it
  ends (kept answers: the cache's rules, 429/5xx are not kept and free the key again, an
  answer over ``max_bytes`` keeps the key but not the bytes).
- A key another replica ran: a non-stream answer is **replayed** from the row
  (``X-Mesh-Replayed: true``) until it expires (``ttl_s``); streams, answers too large
  to keep, and requests paid without an answer to keep (cancelled while their payment was
  written: the row is done with no body, neither a stream nor too large) are refused 409
  ``duplicate_request``. The row's body is **sealed**
  (:class:`~LLM_Mesh.core.answer_seal.AnswerSeal`: AES-GCM under a key derived from
  ``registry.key``, set by the app as :attr:`SharedIdempotency.seal`), with its status,
  media type and headers: the store never holds an output in clear; a replica with another
  registry key refuses (409), and so does one of the version before the seal (it replays
  only a row with a status in clear: none is).
- A key another replica is running now: a stream waits up to ``stream_wait_s`` (2 s) for
  the key to be freed (a safety net: see below), then runs, or is refused 409 (still
  running, or it ended); a non-stream **waits**, polling the row every ``poll_s``, until
  it is done (replayed), freed (claimed and run here) or its owner is dead
  (:meth:`ReplicaBeat.alive`): then 409, because the request may have reached a node
  before its replica died, and it is never run twice.

**A stream's id is held until it ends.** A stream that opened keeps its row ``running``
(its answer cannot be kept) while it runs, however long: every ``refresh_s`` (60 s) this
replica pushes the row's expiry back to ``running_s`` from now (:meth:`refresh_open`), and
writes it ``done`` when the stream ends (``stream_ended``, from the admission stage), held
``ttl_s`` from then. A replica that stops mid-stream stops pushing: the id is free
``running_s`` after its last push. Found 2026-12-03: the row was written ``done`` when the
stream *opened*, so it expired ``ttl_s`` later while the stream still ran, and a retry with
its id ran, and was paid, a second time.

**A keyed client's SDK attempt** (``core/sdk_retry.py``) has an implicit key, shared the
same way: its first attempt runs at once and claims the key in the background over a
``done`` row (:meth:`SharedIdempotency.begin_fresh`: the store's ``supersede_done``), so a
retry on any replica waits for, or replays, the latest attempt; its row is held
``retry_window_s`` after it ended. Its completed stream, kept whole, is written sealed with
``stream`` set (:func:`replay_record` replays it to the retry; a replica of the version
before refuses such a row, 409). A lone registry writes the same rows
(:func:`end_record`) for its SDK attempts, read after a restart (``lone_idempotency.py``).

**A claim is named by a token.** Each claim writes a random token in its row (``claim``,
migration 0019); its end, push and release match it, so a release retried after its answer
was lost never deletes a later claim of the same id by this same replica (found
2026-12-03: the row's owner, the replica, was all a release matched).

**A freed key is freed before its answer goes out.** When a request this replica owns
ends with an answer that frees its key (429 or 5xx, or it failed before it had an answer:
:meth:`abandon`), the row's release starts at once and the admission stage awaits it
(:meth:`settled`, at most ``release_wait_s``, 1 s) before the answer is sent: a client
that retries at once on another replica finds the key free, a stream too (it is never
made to wait). A store that is slow or failing only delays that answer by the bound, never
changes it: the release goes on in the background, retried twice, and ``stream_wait_s``
still covers that case. A request cancelled (the client gone) does not wait.

Other writes at the end of a request (a kept answer, a stream's key) go in the background
(the answer is not held back: the key stays held either way); the app's lifespan awaits
them at shutdown (:meth:`SharedIdempotency.flush`). Once a kept answer is in the store,
this process drops its own copy (a later duplicate here is replayed from the row): the
gateway's memory stays flat under load instead of holding ``max_entries`` answers twice
(``benchmarks/bench_rss.py``). Streams and answers too large to keep hold no bytes; their
keys leave the process's cache the same way once their row is written (a duplicate is
then refused from the row). A running row expires ``running_s`` after its claim (the
request deadline plus the replay window), so a row whose end was never written is freed
at last. Its owner does not leave it to that while it runs: an end the store refused three
times (a failover, connections killed) is tried again every ``park_retry_s`` until the
store takes it (:meth:`SharedIdempotency._park`), and a claim whose outcome the request
never used (it raised after the insert may have committed, or the request was cancelled:
the claim is shielded and let end) releases the row it may have taken
(:meth:`SharedIdempotency._lost_claim`). Either way the row was held under a live replica,
so every retry of that id, here and elsewhere, waited for ``running_s`` (found 2026-12-03).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from starlette.responses import Response

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.answer_seal import AnswerSeal
from LLM_Mesh.core.scope_names import IDEMPOTENCY_KEYS, ScopeNames
from LLM_Mesh.core.sdk_retry import DEFAULT_WINDOW_S, is_implicit
from LLM_Mesh.registry.idempotency import (
    DEFAULT_MAX_BYTES,
    DuplicateRequest,
    IdempotencyCache,
    Stored,
    paid_refusal,
    said_id,
)
from LLM_Mesh.registry.ports import IdempotencyRecord, ReplicaState
from LLM_Mesh.registry.replicas import ReplicaBeat
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["SharedIdempotency", "end_record", "replay_record"]

SSE = "text/event-stream"  # a kept stream's media type (relay.ProxyStream.kept_answer)

log = logging.getLogger(__name__)


_Parked = tuple[Callable[[], Awaitable[object]], Callable[[], None] | None, float]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class SharedIdempotency(IdempotencyCache):
    """See the module docstring."""

    def __init__(
        self,
        store: ReplicaState,
        replicas: ReplicaBeat,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        running_s: float = 720.0,
        poll_s: float = 0.05,
        stream_wait_s: float = 2.0,
        release_wait_s: float = 1.0,
        park_retry_s: float = 1.0,
        refresh_s: float = 60.0,
        ttl_s: float = 600.0,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        stream_hold_s: float = 86_400.0,
        retry_window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        super().__init__(
            clock,
            ttl_s=ttl_s,
            max_entries=max_entries,
            max_bytes=max_bytes,
            stream_hold_s=stream_hold_s,
            retry_window_s=retry_window_s,
        )
        self.store = store
        self.replicas = replicas
        self.wall_clock = wall_clock
        self.running_s = running_s
        self.poll_s = poll_s
        self.stream_wait_s = stream_wait_s
        self.release_wait_s = release_wait_s
        self.park_retry_s = park_retry_s
        self.refresh_s = refresh_s
        # key -> (its hash, this run's claim token), for keys this replica runs
        self._owned: dict[str, tuple[str, str]] = {}
        # key -> (its hash, claim token, wall time it opened): streams open now, their rows
        # held ``running`` and pushed back every ``refresh_s`` until they end
        self._open: dict[str, tuple[str, str, float]] = {}
        self._refresh_task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        # claim token -> its claim in flight (a first SDK attempt's): its writes wait for it
        self._claiming: dict[str, asyncio.Task[None]] = {}
        self._freeing: dict[str, asyncio.Task[None]] = {}  # key -> its release, until settled
        self._orphans: dict[str, asyncio.Task[None]] = {}  # hash -> release of a lost claim
        # hash -> an end write the store refused three times: tried again until it takes it
        self._parked: dict[str, _Parked] = {}
        self._park_lock = asyncio.Lock()  # one try of a parked write at a time (and claims)
        self._park_task: asyncio.Task[None] | None = None
        # kept answers' bodies are sealed in the store; the app sets the registry key's seal
        # (every replica's), until then one no other process shares
        self.seal = AnswerSeal.random()
        # rows are named by a keyed hash of their key: the app sets the registry key's names
        self.names = ScopeNames.random(IDEMPOTENCY_KEYS)

    def key_hash(self, key: str) -> str:
        """The name of ``key``'s row in the store: 64 hex digits of its keyed hash."""
        return self.names.digest(key)

    @property
    def owner(self) -> str:
        return self.replicas.replica_id

    async def begin(self, key: str, stream: bool) -> Response | None:
        if self.holds(key):
            return await super().begin(key, stream)  # a duplicate inside this process
        await super().begin(key, stream)  # new here: held locally while the store decides
        token = os.urandom(16).hex()  # names this claim: its end and release carry it
        try:
            answer = await self._claim(key, stream, token)
        except DuplicateRequest as exc:
            self.refuse(key, exc)
            raise
        except BaseException:
            super().abandon(key)
            raise
        if answer is None:
            self._owned[key] = (self.key_hash(key), token)
            return None
        super().finish(key, answer)  # local duplicates get the same replay
        if stream:  # (a kept stream's: finish keeps no stream's answer)
            self.keep_replayed(key, answer)
        return answer

    async def begin_fresh(self, key: str, stream: bool) -> bool:
        """A first SDK attempt's implicit key (``core/sdk_retry.py``): it runs at once, and
        its key is claimed in the store **in the background** (not awaited: every keyed
        SDK request would wait for a database write), over
        a row that is done (the key's earlier attempt, on any replica), so its retries
        anywhere refer to this one; this run's end, release and pushes wait for that claim
        (:meth:`_write`). An identical attempt of the same client running here: ``False``
        (run without the key); running on another replica: the claim finds its row, and
        this run's writes (matching its own claim token) change nothing in the store."""
        if not self._fresh(key, stream):
            return False
        h, token = self.key_hash(key), os.urandom(16).hex()

        async def claim() -> None:
            try:  # a claim that failed released what it may have taken (_claim_once)
                if await self._claim_once(h, stream, token, supersede=True) is None:
                    self._parked.pop(h, None)  # an end of the earlier run still to write: moot
            except Exception:
                log.warning("could not claim an SDK attempt's implicit key", exc_info=True)

        task = asyncio.get_running_loop().create_task(claim())
        self._writes.add(task)  # (flush waits for it)
        self._claiming[token] = task

        def done(t: asyncio.Task[None]) -> None:
            self._writes.discard(t)
            self._claiming.pop(token, None)

        task.add_done_callback(done)
        self._owned[key] = (h, token)
        return True

    async def _claim(self, key: str, stream: bool, token: str) -> Response | None:
        """``None``: this replica runs it; else the replayed answer (or raise 409)."""
        h = self.key_hash(key)
        orphan = self._orphans.get(h)
        if orphan is not None:  # this replica's lost claim of it is being released: first
            await asyncio.wait((orphan,))
        give_up = time.monotonic() + self.stream_wait_s  # a stream's wait for a freed key
        while True:
            if h in self._parked:  # an end of it this replica still has to write: first
                async with self._park_lock:
                    await self._try_parked(h)
                    rec = await self._claim_once(h, stream, token)
                    if rec is None:  # a new row: what was parked for the old one is moot
                        self._parked.pop(h, None)
            else:
                rec = await self._claim_once(h, stream, token)
            if rec is None:
                return None
            if rec.state == "done":
                return replay_record(key, rec, stream, self.seal)
            lost = not self.replicas.alive(rec.owner, rec.created_at)
            if (stream or rec.stream) and time.monotonic() >= give_up and not lost:
                raise DuplicateRequest(
                    f"a request with id {said_id(key)!r} is running on another "
                    "replica; a stream is never executed twice",
                    param="X-Request-Id",
                )
            if lost:  # a stream too: the client is told to send a new id (found 2026-12-04)
                raise DuplicateRequest(
                    f"a request with id {said_id(key)!r} was being served by a "
                    "registry replica that stopped; it may have run, and it is never executed "
                    "twice: send a new id to run it again",
                    param="X-Request-Id",
                    reason="owner_lost",
                )
            await asyncio.sleep(self.poll_s)

    async def _claim_once(
        self, h: str, stream: bool, token: str, *, supersede: bool = False
    ) -> IdempotencyRecord | None:
        now = self.wall_clock()
        claim = asyncio.ensure_future(
            self.store.claim_request_key(
                h, self.owner, stream, _utc(now), _utc(now + self.running_s), claim=token,
                supersede_done=supersede,
            )
        )  # fmt: skip
        try:  # a cancelled request lets its claim end, to free what it took
            return await asyncio.shield(claim)
        except BaseException:
            self._lost_claim(h, token, claim)
            raise

    def _lost_claim(
        self, h: str, token: str, claim: asyncio.Future[IdempotencyRecord | None]
    ) -> None:
        """A claim whose outcome this request never used: it failed (its insert may have
        committed, the answer lost: a connection killed after the commit) or the request
        was cancelled while it ran. Once it is over, a row it may have taken is released
        (only this replica's running row: nothing ran under it), so the client's retry,
        here or at another replica, is not left waiting on a live owner for ``running_s``
        (found 2026-12-03). A claim of the same id here waits for that release first."""

        async def free_if_taken() -> None:
            await asyncio.wait((claim,))
            if claim.cancelled() or claim.exception() is not None or claim.result() is None:
                await self.store.release_request_key(h, self.owner, token)

        task = self._write(h, free_if_taken)
        self._orphans[h] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._orphans.get(h) is t:
                del self._orphans[h]

        task.add_done_callback(done)

    def finish(self, key: str, response: Response | None, *, paid: bool = False) -> None:
        super().finish(key, response, paid=paid)
        owned = self._owned.pop(key, None)
        if owned is None:
            return
        h, token = owned
        kept = self.kept(key)
        if kept is None:  # a 429 or 5xx: free the key (awaited by :meth:`settled`)
            self._free(key, h, token)
            return
        if self.is_open(key):  # a stream opened: its row stays running until it ends
            self._open[key] = (h, token, self.wall_clock())
            if self._refresh_task is None or self._refresh_task.done():
                self._refresh_task = asyncio.get_running_loop().create_task(self._refreshing())
            return
        self._write_end(key, h, token)

    def stream_ended(self, key: str) -> None:
        super().stream_ended(key)
        opened = self._open.pop(key, None)
        if opened is not None:  # done now: held ``ttl_s`` from its end, everywhere
            self._write_end(key, opened[0], opened[1])

    def _write_end(self, key: str, h: str, token: str) -> None:
        kept = self.kept(key)
        if kept is None:  # pragma: no cover - only called for a kept key
            return
        stored = kept[0]
        rec = end_record(self, key, h, self.owner, self.wall_clock(), token, self.seal)
        self._write(
            h,
            lambda: self.store.finish_request_key(rec),
            then=lambda: self._forget(key, stored),
            token=token,
        )

    async def refresh_open(self) -> None:
        """Push back the rows of the streams open here: each expires ``running_s`` from
        now, so a stream's id stays held however long it runs, and a replica that stopped
        (crashed) stops pushing: its streams' ids are free ``running_s`` after its last
        push. A failed push is tried again at the next (``refresh_s`` is well under
        ``running_s``). A stream open longer than ``stream_hold_s`` is pushed no more."""
        now = self.wall_clock()
        for key, (h, token, since) in list(self._open.items()):
            if now - since > self.stream_hold_s:
                self._open.pop(key, None)
                continue
            try:
                await self.store.extend_request_key(h, token, _utc(now + self.running_s))
            except Exception:
                log.warning("could not hold an open stream's request id", exc_info=True)

    async def _refreshing(self) -> None:
        while self._open:
            await asyncio.sleep(self.refresh_s)
            await self.refresh_open()

    def _forget(self, key: str, stored: Stored | None) -> None:
        """The store holds ``key``'s end now: drop this process's copy (a duplicate here
        is then replayed or refused from the row, as on any other replica). The copy was
        most of the cache's memory: ``max_entries`` answers of a few KB each, held twice;
        a stream's key alone, ~0.3 KB, kept the cache growing until it held
        ``max_entries`` of them."""
        kept = self.kept(key)
        if kept is not None and kept[0] is stored:  # that run's end, not a later run's
            self._pop(key)

    def abandon(self, key: str) -> None:
        super().abandon(key)
        owned = self._owned.pop(key, None)
        if owned is not None:
            self._free(key, *owned)

    def _free(self, key: str, h: str, token: str) -> None:
        """Release ``key``'s row now; :meth:`settled` waits for it (before the answer).
        The release names this run's claim (``token``): a try of it that reaches the store
        late (a retry after an answer lost) never deletes a later claim of the same id,
        this replica's own included (found 2026-12-03)."""
        task = self._write(
            h, lambda: self.store.release_request_key(h, self.owner, token), token=token
        )
        self._freeing[key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._freeing.get(key) is t:  # not settled (a request cancelled): forget it
                del self._freeing[key]

        task.add_done_callback(done)

    async def settled(self, key: str) -> None:
        """Wait until ``key``'s release, started by :meth:`finish` or :meth:`abandon`, is
        in the store, at most ``release_wait_s``; then the answer goes out (a slow or
        failing store: the release goes on in the background, with its retries)."""
        task = self._freeing.pop(key, None)
        if task is not None and not task.done():
            await asyncio.wait((task,), timeout=self.release_wait_s)

    def _write(
        self,
        h: str,
        op: Callable[[], Awaitable[object]],
        then: Callable[[], None] | None = None,
        *,
        token: str | None = None,
    ) -> asyncio.Task[None]:
        """Run ``op`` (an end of the row ``h``) in the background, retried twice if the store
        fails, then parked (:meth:`_park`); ``then`` once it succeeded. ``token``: the run's
        claim, waited for while in flight (:meth:`begin_fresh`), so a release never reaches
        the store before the claim it releases (a row left running for ``running_s``)."""

        async def run() -> None:
            claiming = None if token is None else self._claiming.get(token)
            if claiming is not None:
                await asyncio.wait((claiming,))
            for delay in (0.2, 1.0, None):
                try:
                    await op()
                except Exception:
                    if delay is None:
                        log.warning(
                            "could not write an idempotency key's end to the store; trying "
                            "again every %.0f s",
                            self.park_retry_s,
                            exc_info=True,
                        )
                        self._park(h, op, then)
                        return
                    await asyncio.sleep(delay)
                else:
                    if then is not None:
                        then()
                    return

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    def _park(
        self, h: str, op: Callable[[], Awaitable[object]], then: Callable[[], None] | None
    ) -> None:
        """Keep trying a row's end the store refused (a failover, connections killed), every
        ``park_retry_s``, until it takes it or the row has expired (``running_s``): a row
        left ``running`` under this live replica would hold its id everywhere for
        ``running_s`` (a retry waiting on it all along). Found 2026-12-03: given up after
        three tries in 1.2 s."""
        self._parked[h] = (op, then, time.monotonic())
        if self._park_task is None or self._park_task.done():
            self._park_task = asyncio.get_running_loop().create_task(self._retry_parked())

    async def _retry_parked(self) -> None:
        while self._parked:
            await asyncio.sleep(self.park_retry_s)
            for h in list(self._parked):
                async with self._park_lock:
                    await self._try_parked(h)

    async def _try_parked(self, h: str) -> None:
        """One try of ``h``'s parked end (the caller holds ``_park_lock``)."""
        entry = self._parked.get(h)
        if entry is None:
            return
        op, then, since = entry
        if time.monotonic() - since > self.running_s:  # the row has expired by now
            del self._parked[h]
            return
        try:
            await op()
        except Exception:
            return
        if self._parked.get(h) is entry:
            del self._parked[h]
        if then is not None:
            then()

    async def flush(self) -> None:
        """Wait for the writes in flight (not the parked ones: they are tried every
        ``park_retry_s`` in the background)."""
        while self._writes:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def close(self) -> None:
        """:meth:`flush`, then stop trying parked writes and pushing open streams' rows back
        (shutdown: what is still parked is lost, its rows expire after ``running_s``)."""
        await self.flush()
        for attr in ("_park_task", "_refresh_task"):
            task = getattr(self, attr)
            setattr(self, attr, None)
            await cancel_and_wait(task)


def replay_record(key: str, rec: IdempotencyRecord, stream: bool, seal: AnswerSeal) -> Response:
    """A ``done`` row's answer for a duplicate of ``key``; or raise 409 (see the module
    docstring): a stream only when the row holds the whole of an SDK attempt's completed
    stream (a row older versions refuse: its ``stream`` is set)."""
    rid = said_id(key)
    if not stream and not rec.stream and rec.body is None and not rec.too_large:
        raise paid_refusal(key)  # paid, then cancelled or failed: nothing to replay
    body = rec.body
    kept_stream = stream and rec.stream and body is not None and is_implicit(key)
    if body is None or (not kept_stream and (stream or rec.stream)):
        detail = (
            "its answer was too large to keep for replay"
            if rec.too_large
            else "a stream is never executed twice"
        )
        raise DuplicateRequest(
            f"a request with id {rid!r} has already run; {detail}",
            param="X-Request-Id",
        )
    opened = seal.open(rec.key_hash, body)
    stored = None if opened is None else _unenvelope(opened)
    if stored is None:
        raise DuplicateRequest(
            f"a request with id {rid!r} has already run on a registry replica whose "
            "registry.key differs from this one's, so its kept answer cannot be opened here "
            "(give every replica the same registry.key)",
            param="X-Request-Id",
        )
    return stored.response()


def end_record(
    cache: IdempotencyCache, key: str, h: str, owner: str, now: float, claim: str | None,
    seal: AnswerSeal,
) -> IdempotencyRecord:  # fmt: skip
    """The ``done`` row of ``key`` (named ``h``), finished and kept in ``cache``, held its
    window from ``now``: its answer sealed (never an output in clear in the store; nor a
    status: a replica of the version before sealing replays any row with one, and must
    refuse this one instead, 409), or the key alone (a stream not kept, an answer too
    large, one paid without an answer)."""
    kept = cache.kept(key)
    stored, too_large = kept if kept is not None else (None, False)
    return IdempotencyRecord(
        key_hash=h,
        owner=owner,
        # no answer: a stream's, one too large, or one paid without an answer (not a
        # stream); an answer: a stream's only when an SDK attempt's completed stream
        stream=(stored is None and not too_large and not cache.paid_unanswered(key))
        or (stored is not None and stored.media_type == SSE),
        state="done",
        created_at=_utc(now),
        expires_at=_utc(now) + timedelta(seconds=cache.held_for(key)),
        too_large=too_large,
        claim=claim,
        body=None if stored is None else seal.seal(h, _envelope(stored)),
    )


def _envelope(stored: Stored) -> bytes:
    """What is sealed: the answer's status, media type and headers (a JSON line), then its
    body."""
    meta = {"status": stored.status, "media_type": stored.media_type,
            "headers": [[k, v] for k, v in stored.headers]}  # fmt: skip
    return strict_json.dumps(meta) + b"\n" + stored.body  # (compact JSON: no raw newline)


def _unenvelope(data: bytes) -> Stored | None:
    """:func:`_envelope`'s answer; ``None`` if it is not one."""
    line, sep, body = data.partition(b"\n")
    try:
        meta = strict_json.loads_object(line) if sep else None
    except ValueError:
        return None
    if meta is None or type(meta.get("status")) is not int:
        return None
    media, headers = meta.get("media_type"), meta.get("headers") or []
    pairs = tuple((str(h[0]), str(h[1])) for h in headers if isinstance(h, list) and len(h) == 2)
    return Stored(meta["status"], body, pairs, media if isinstance(media, str) else None)
