"""Pushing the ledger's checkpoints to witnesses (C2SP ``tlog-witness``, ``add-checkpoint``).

For each URL in ``LLM_MESH_LEDGER_WITNESS_URLS`` (a witness's submission prefix; default:
none, nothing pushed) :class:`WitnessPusher` sends the newest signed checkpoint (its own
note: the registry's signature only) to ``POST <url>/add-checkpoint`` with the RFC 9162
consistency proof from the size that witness last cosigned. That size is learned from its
answers: unknown at start (0, as the spec allows), a 409 ``text/x.tlog.size`` says it, and
the push is made again at once from there (at most :data:`RESYNCS` times a round). A 200's
cosignature lines are checked as a witness's handed-in ones are
(``core/witness.open_cosignature`` against the keys in ``LLM_MESH_LEDGER_WITNESSES``, a
timestamp at most ``FUTURE_S`` ahead; other keys' lines ignored, as the spec says) and
stored with ``SqlLedger.add_cosignature``: ``GET /v1/ledger/checkpoints`` serves them and
``ledger verify --witness`` counts them, unchanged.

It never holds up anything else: its own task, woken by the checkpointer
(``Checkpointer.on_signed``: an ``Event.set``) and every ``interval_s`` (checkpoints signed
by other replicas, retries); each push within ``timeout_s`` (connect, send, the whole
answer); witnesses in parallel. A failure (unreachable, timeout, 4xx/5xx, a malformed
answer) is logged and the witness tried again after a capped exponential backoff
(``core/retry.Backoff``: ``interval_s`` doubling to an hour); a 409 for another root or a
422 (the witness holds a history this log's proof does not extend: a fork, or this
store was replaced) is logged as an ERROR, and so is a 409 naming a size beyond this
store's tree (a database restored from an older backup: ``registry/ledger_mark.py``
refuses that at start, unless overridden). So is a failure on this registry's side
during a witness's push (the database, reading the checkpoint's note, building the
consistency proof or storing the cosignature: ``failed: database error: ...``): it is
that witness's failure, backed off the same way. Whatever fails for one witness spoils
no other's result in the round (``said``).

Outbound rules (the URLs are operator configuration, checked strictly at start:
``config._witness_urls``): no redirect is followed (a 3xx is a failure), at most
:data:`~LLM_Mesh.core.tlog_witness.MAX_ANSWER` bytes of an answer are read, undecoded
(``Accept-Encoding: identity``; another ``Content-Encoding`` is a failure:
:func:`LLM_Mesh.bounded_http.read_body`), no proxy
from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import SQLAlchemyError

from LLM_Mesh.bounded_http import AS_SENT, AnswerRefused, read_body
from LLM_Mesh.core.checkpoint import Checkpoint, split_note
from LLM_Mesh.core.retry import Backoff
from LLM_Mesh.core.tlog_witness import (
    ADD_CHECKPOINT,
    MAX_ANSWER,
    Malformed,
    parse_cosignature_lines,
    parse_size,
    request_body,
)
from LLM_Mesh.core.witness import FUTURE_S, BadCosignature, WitnessKey, open_cosignature
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.ledger import LedgerError, SqlLedger
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["PUSH_TIMEOUT_S", "RESYNCS", "WitnessPusher", "make_witness_client"]

log = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 10.0
RESYNCS = 2  # pushes again after a 409 that names the witness's size, per round
_DASH = "\u2014 "


def make_witness_client(timeout_s: float = PUSH_TIMEOUT_S) -> httpx.AsyncClient:
    """The pusher's one client: no redirects, no environment proxies, bounded timeouts."""
    return httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout_s)
    )


class PushFailed(Exception):
    """A push that got no usable answer (said in the log, retried later)."""


# what a witness's answer (or its absence) raises; anything else is this registry's side
_PUSH_ERRORS = (PushFailed, AnswerRefused, httpx.HTTPError, TimeoutError, Malformed, ValueError)


def _first_line(text: str, limit: int = 300) -> str:
    """An exception's first line, cut (SQLAlchemy's run on with the statement and a URL)."""
    return text.strip().split("\n", 1)[0][:limit]


@dataclass
class _Witness:
    url: str
    known: int = 0  # the size this witness said it cosigned last (0: not known)
    cosigned: int = 0  # the size whose cosignature from it this process stored
    failures: int = 0
    not_before: float = 0.0


class WitnessPusher:
    """Pushes ``ledger``'s newest checkpoint to ``urls`` (see the module docstring)."""

    def __init__(
        self,
        ledger: SqlLedger,
        urls: Sequence[str],
        witnesses: Sequence[WitnessKey],
        client: httpx.AsyncClient,
        *,
        interval_s: float = 60.0,
        timeout_s: float = PUSH_TIMEOUT_S,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger, self.witnesses, self.client = ledger, list(witnesses), client
        self.targets = [_Witness(u.rstrip("/")) for u in urls]
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self._wall_clock, self._clock = wall_clock, clock
        self.backoff = Backoff(
            base_s=interval_s, max_s=max(interval_s, 3600.0), max_attempts=1 << 30
        )
        self._wake = asyncio.Event()
        self.round_log = RoundLog(log, "witness pusher", clock=clock, wall_clock=wall_clock)
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()  # one round at a time (the loop's, or a caller's)
        self.said: dict[str, str] = {}  # per URL, what its last push came to
        self.rounds = 0

    def wake(self, _cp: Checkpoint | None = None) -> None:
        """A checkpoint was signed: push soon (never blocks)."""
        self._wake.set()

    async def push_all(self) -> dict[str, str]:
        """One round: the newest checkpoint to every witness due; per URL what happened."""
        async with self._round:
            try:
                said = await self._push_all()
            finally:  # a round that failed whole (the newest checkpoint unread) counts too
                self.rounds += 1
            self.said.update(said)
            return said

    async def _push_all(self) -> dict[str, str]:
        latest = await self.ledger.latest_checkpoint()
        if latest is None:
            return {}
        now = self._clock()
        due = [t for t in self.targets if t.cosigned < latest.tree_size and t.not_before <= now]
        if not due:
            return {}
        size = latest.tree_size
        try:
            own = await self.ledger.checkpoint_at(size)
        except Exception as exc:  # every witness due fails this round, each backing off
            return {t.url: self._failed(t, size, exc) for t in due}
        note = own.note if own is not None else latest.note
        said = await asyncio.gather(*(self._push_one(t, size, note) for t in due))
        return {t.url: s for t, s in zip(due, said, strict=True)}

    async def _push_one(self, target: _Witness, size: int, note: str) -> str:
        """One witness's push; whatever fails (its answer, or this registry's database
        on its behalf) is that witness's failure only: the round's others stand."""
        try:
            said = await asyncio.wait_for(self._push(target, size, note), self.timeout_s)
        except Exception as exc:
            return self._failed(target, size, exc)
        target.failures, target.not_before = 0, 0.0
        return said

    def _failed(self, target: _Witness, size: int, exc: Exception) -> str:
        """Log ``exc`` as ``target``'s failure, back off, and what the round says of it."""
        target.failures += 1
        wait = self.backoff.delay(target.failures)
        target.not_before = self._clock() + wait
        why = str(exc) or type(exc).__name__
        if isinstance(exc, (SQLAlchemyError, LedgerError)):  # LedgerError is a ValueError
            why = f"database error: {type(exc).__name__}: {_first_line(why)}"
            log.error("witness %s: push of size %d failed on this registry's side (%s); "
                      "again in %.0f s", target.url, size, why, wait)  # fmt: skip
            return f"failed: {why}"
        if isinstance(exc, _PUSH_ERRORS):
            log.warning("witness %s: push of size %d failed (%s); again in %.0f s",
                        target.url, size, why, wait)  # fmt: skip
            return f"failed: {why}"
        why = f"{type(exc).__name__}: {_first_line(why)}"
        log.error("witness %s: push of size %d failed (%s, unexpected); again in %.0f s",
                  target.url, size, why, wait, exc_info=exc)  # fmt: skip
        return f"failed: {why}"

    async def _push(self, target: _Witness, size: int, note: str) -> str:
        for _ in range(RESYNCS + 1):
            old = target.known
            if old > size:  # found 2026-12-05: a restored older backup, said as a timeout's
                log.error("witness %s cosigned size %d, beyond this store's %d: the database was "
                          "restored from an older backup (or replaced) and this log forked; "
                          "docs/deploy.md, 'Restoring the database'", target.url, old, size)  # fmt: skip
                raise PushFailed(f"the witness has cosigned size {old}, beyond this log's {size}")
            proof: list[bytes] = []
            if 0 < old < size:
                _, _, proof = await self.ledger.consistency_proof(old, size)
            status, ctype, body = await self._post(target.url, request_body(old, proof, note))
            if status == 200:
                target.known = size  # the witness moved on, whatever its answer says
                stored = await self._store(size, note, body)
                target.cosigned = size
                return f"cosigned size {size} ({stored} stored)"
            if status == 409:
                got = parse_size(body, ctype)
                if got is None:
                    log.error("witness %s cosigned another root at size %d: this log forked "
                              "(or its store was replaced)", target.url, size)  # fmt: skip
                    raise PushFailed("409: another root at this size")
                if got == old:
                    raise PushFailed(f"409 naming the size {old} the push was from")
                target.known = got
                continue
            text = body[:200].decode("utf-8", "replace").strip()
            if status == 422:
                log.error("witness %s: the consistency proof from its size %d to %d does not "
                          "verify: it holds another history (%s)", target.url, old, size, text)  # fmt: skip
            raise PushFailed(f"{status}: {text}")
        raise PushFailed("the witness's size kept changing")

    async def _post(self, url: str, body: bytes) -> tuple[int, str | None, bytes]:
        headers = {"Content-Type": "text/plain", **AS_SENT}
        async with self.client.stream(
            "POST", url + ADD_CHECKPOINT, content=body, headers=headers
        ) as r:
            if r.is_redirect or 300 <= r.status_code < 400:
                raise PushFailed(f"{r.status_code}: a redirect (not followed)")
            got = await read_body(r, MAX_ANSWER, what="an answer", as_sent=True)
            return r.status_code, r.headers.get("content-type"), got

    async def _store(self, size: int, note: str, answer: bytes) -> int:
        """Store the answer's valid cosignatures by trusted witness keys; how many."""
        body, _ = split_note(note)
        stored = 0
        limit = int(self._wall_clock()) + FUTURE_S
        for line in parse_cosignature_lines(answer):
            for wk in self.witnesses:
                try:
                    ts = open_cosignature(line, body, wk)
                except BadCosignature as exc:
                    log.warning("witness answer for size %d: %s", size, exc)
                    continue
                if ts is None or ts > limit:
                    continue
                if await self.ledger.add_cosignature(size, wk.vkey, ts, _DASH + line + "\n"):
                    stored += 1
        if not stored:
            log.warning("a witness's answer for size %d has no new cosignature by a key in "
                        "LLM_MESH_LEDGER_WITNESSES", size)  # fmt: skip
        return stored

    async def _run(self) -> None:
        while True:
            try:
                await self.push_all()
            except Exception as exc:  # a bad moment of the database must not end the loop
                what = "pushing checkpoints to witnesses failed"
                self.round_log.failed(exc, what, "trying again later")
            else:
                self.round_log.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    def round_logs(self) -> Iterable[RoundLog]:
        """The pusher's loop (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def start(self) -> None:
        if self._task is None and self.targets:
            self._task = asyncio.create_task(self._run(), name="witness-pusher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
