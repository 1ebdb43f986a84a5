"""A lone registry's client request ids paid before it restarted: never run and paid again.

A registry on SQLite runs alone and keeps its clients' request ids (``Idempotency-Key`` /
``X-Request-Id``) in its process (``registry/idempotency.py``): a restart forgets them.
A client whose answer was lost to that restart (the gateway stopped past its grace while
it was paid, or crashed after the payment was committed; or that simply retries at once)
sends its id again to the new process: it ran, and was paid, a second time (found
2026-12-04: ``tests/registry/test_paid_ids.py``). Replicas on PostgreSQL keep the ids in
the store (``registry/shared_idempotency.py``) and never had this.

The ledger already knows: a paid request's ``settlements`` rows (``answered``, then
``settled``) carry its key, ``c-`` + 24 hex digits of the client's id hashed + ``~`` + a
suffix of the request (the nodes' ``req-`` id's first 16 hex digits) + ``.`` + a tag of its
path (``parse.settle_key_for``, ``parse.path_tag``), and its payer. So for the replay window after a start (:class:`PaidIds`, the idempotency
cache's ``ttl_s``, 10 min), a client id the process has not seen is looked up there
(:func:`paid_under`: one read of the primary key's range, the rows of that id and path,
as the process's check keys it, paid by that payer within the window; found 2026-12-04,
review: without the path, the same id sent to the other path was refused; found
2026-12-05: SQLite read the payer's whole history instead, by ``ix_settlements_payer``,
since dropped, migration 0021, ``tests/registry/test_paid_ids_plan.py``); one found is
refused 409 ``duplicate_request`` as a request paid without an answer to replay is. After
the window nothing of the previous process can be in it: no read at all.

The scope looked up is the process's (``admit.IdempotencyCheck``: path, client, id). A
keyed request's payer is its API key's own account (``settlement.user_account`` of the key
id: one a key), its scope in the cache. Anonymous requests are all paid by one ``pool``
and scoped by address and prompt in the cache (``client.scope``, ``admit.prompt_digest``):
before the price check their settlement key's tag is made to bind those too
(:meth:`PaidIds.scoped`: 8 hex digits of HMAC under the ledger's secret account key,
``core/ledger_entry.Pseudonyms.tag``, so the public ledger tells nobody the address or the
prompt), and the pool's rows are looked up by that exact tag: another address's (or
another prompt's) reuse of the id runs, as before the restart (found 2026-12-04: anonymous
ids were not looked up, so the pool paid one retried across a restart twice). A pool row
with an unscoped tag (written before the scope) is never taken for one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.errors import DuplicateRequest
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger_accounts import pseudonyms

__all__ = ["PaidIds", "paid_under"]

_PAID = ("answered", "settled")


async def paid_under(
    engine: AsyncEngine, ledger_id: str, payer: str, since: datetime, tag: str = "",
    *, exact: bool = False,
) -> bool:  # fmt: skip
    """Whether ``payer`` paid a request of client ledger id ``ledger_id`` (``c-`` + 24 hex:
    its keys are ``ledger_id~<suffix>.<tag>``) answered at ``since`` or later; ``tag``: of
    that path only (a key without a tag, written before keys had one, of any path, unless
    ``exact``)."""
    s = tables.settlements
    stmt = (
        select(s.c.request_id)
        .where(s.c.request_id > f"{ledger_id}~", s.c.request_id < f"{ledger_id}\x7f")
        # ``|| ''``: no index can serve these terms, so the key's range is read (SQLite's
        # planner has no statistics in a registry's store: it took ``ix_settlements_payer``,
        # dropped since, or ``ix_settlements_state``: every row of the payer, or every paid one)
        .where(s.c.part == 0, s.c.payer.concat("") == payer, s.c.state.concat("").in_(_PAID))
        .where(s.c.updated_at >= since)
        .limit(1)
    )
    if exact:
        stmt = stmt.where(s.c.request_id.endswith(f".{tag}"))
    elif tag:
        stmt = stmt.where(s.c.request_id.endswith(f".{tag}") | ~s.c.request_id.contains("."))
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).first() is not None


class PaidIds:
    """The ids a lone registry's previous process was paid for (see the module docstring)."""

    __slots__ = ("engine", "started", "wall_clock", "window_s")

    def __init__(
        self,
        engine: Callable[[], Awaitable[AsyncEngine]],
        window_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.window_s = window_s
        self.wall_clock = wall_clock
        self.started = wall_clock()

    async def scoped(self, settle_key: str, *scope: str) -> str:
        """An anonymous request's ``settle_key`` (``c-…~suffix.tag``) with its tag bound to
        ``scope`` as well (its client's address, its prompt's digest): ``.s`` + 8 hex digits
        of :meth:`~LLM_Mesh.core.ledger_entry.Pseudonyms.tag` (the ledger's secret; read
        once a process)."""
        head, dot, tag = settle_key.rpartition(".")
        if not dot or "~" not in head:
            return settle_key
        accounts = await pseudonyms(await self.engine())
        return f"{head}.s{accounts.tag(tag, *scope)}"

    async def refusal(self, client_id: str, settle_key: str, payer: str) -> DuplicateRequest | None:
        """The 409 for ``client_id`` (its request's ``settle_key``, paid by ``payer``) when
        it was paid within the window; ``None`` (run it) otherwise. The pool's rows are read
        by the scoped tag only (:meth:`scoped`): nothing else is one client's."""
        now = self.wall_clock()
        if now - self.started >= self.window_s or "~" not in settle_key:
            return None
        ledger_id, _, suffix = settle_key.partition("~")
        tag = suffix.rpartition(".")[2] if "." in suffix else ""
        pool = payer == POOL
        if pool and not tag.startswith("s"):  # not scoped: no one client's
            return None
        since = datetime.fromtimestamp(now - self.window_s, timezone.utc)
        if not await paid_under(await self.engine(), ledger_id, payer, since, tag, exact=pool):
            return None
        return DuplicateRequest(
            f"a request with id {client_id!r} was paid before this registry restarted; "
            "its answer is not kept across a restart, and it is never executed twice: "
            "send a new id to run it again",
            param="X-Request-Id",
        )
