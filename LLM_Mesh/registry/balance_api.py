"""``GET /v1/balance``: what the caller may spend, in whole micro-NetworkTokens.

With an API key (``Authorization: Bearer <key>``): its user's account
(``user:<pseudonym of the key id>``); without one: the community ``pool`` that pays for
anonymous requests (with its daily budget). The answer::

    {"object": "balance", "account": "user:...", "payer": "user", "balance": 1000,
     "reserved": 135, "available": 865, "unit": "micro-NetworkToken", "settlement": true,
     "tree_size": 52}

``reserved`` is what the caller's requests in flight hold (their estimate, or their exact
cost once answered, until settled into the ledger) and the gateways' reservation leases
on the account (a block of a few estimates each gateway process reserves once and admits
requests against; one unused for ``LLM_MESH_SETTLE_LEASE_IDLE_S``, 1 s, goes back:
``registry/settle_lease.py``); ``available = balance - reserved`` is what a new request's
estimate must fit in. ``tree_size``: the ledger's size when the balance was read (in
the same statement): the first ``tree_size`` entries add up to ``balance``, which
``llm-mesh ledger verify`` checks (the pool's, and the user's of ``LLM_MESH_API_KEY``).
A wrong or revoked key is 401, as on every
``/v1`` endpoint (``registry/access.py``).

The pool's row (no key) is read from the store at most once every
:data:`POOL_READ_EVERY_S` (1 s) per process, concurrent callers sharing one read: the
answer (its ``balance``, ``reserved`` and ``tree_size`` from one read) is at most that
old (found 2026-12-05: every call without a key read the database, unlimited, ~1 ms of
the loop's CPU each). A key's own row is read on every call.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.access import Authenticate
from LLM_Mesh.registry.errors import JSONAnswer
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.runtime import Runtime, get_runtime
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.strict_query import STRICT

router = APIRouter(tags=["Balance"])

POOL_READ_EVERY_S = 1.0  # the longest a pool balance answered without a key is kept


class _PoolRow:
    """The pool's last read (``tree_size``, ``(balance, reserved)``), kept
    :data:`POOL_READ_EVERY_S`; one read at a time, its callers waiting for it."""

    __slots__ = ("at", "reading", "row")

    def __init__(self) -> None:
        self.at = float("-inf")
        self.row: tuple[int, tuple[int, int]] = (0, (0, 0))
        self.reading: asyncio.Future[tuple[int, tuple[int, int]]] | None = None

    async def get(self, rt: Runtime) -> tuple[int, tuple[int, int]]:
        if rt.clock() - self.at < POOL_READ_EVERY_S:
            return self.row
        if self.reading is None:
            self.reading = asyncio.ensure_future(self._read(rt))
        return await asyncio.shield(self.reading)

    async def _read(self, rt: Runtime) -> tuple[int, tuple[int, int]]:
        if rt.ledger is None:  # pragma: no cover - get_balance checked it first
            raise RuntimeError("the pool's balance is read without a ledger")
        try:
            at = rt.clock()
            size, rows = await rt.ledger.stored_balances((POOL,))
            self.row, self.at = (size, rows.get(POOL, (0, 0))), at
            return self.row
        finally:
            self.reading = None


class BalanceView(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["balance"]
    account: str = Field(description="the ledger account (a pseudonym, or `pool`)")
    payer: Literal["user", "pool"]
    balance: int = Field(description="credits less debits in the ledger (µNT)")
    reserved: int = Field(
        description="held by requests in flight and the gateways' reservation leases (µNT)"
    )
    available: int = Field(description="balance - reserved: what a new estimate must fit in")
    unit: Literal["micro-NetworkToken"]
    settlement: bool = Field(description="whether this registry settles requests")
    tree_size: int = Field(
        description="the ledger's size when read: its first tree_size entries add up to balance"
    )
    daily_budget: int | None = Field(
        default=None, description="the pool only: what it is topped up to each UTC day"
    )


_E401 = {"description": "a wrong or revoked API key (`invalid_api_key`)"}
_E429 = {"description": "too many unknown keys tried from this address"}


@router.get(
    "/v1/balance",
    **STRICT,
    responses={200: {"model": BalanceView}, 401: _E401, 429: _E429},
    response_model=None,
)
async def get_balance(request: Request) -> JSONAnswer:
    """The caller's balance: its API key's user, or (no key) the community pool."""
    rt = get_runtime(request)
    peer = request.client
    client = Client(peer.host if peer else "unknown", request.headers.get("authorization"))
    key = await Authenticate(rt.keys, rt.limiter, rt.clock).identify(client)
    if rt.ledger is None:  # pragma: no cover - wiring bug
        raise MeshError("the ledger is not set up")
    if key is None:
        account = POOL
        pool = getattr(request.app.state, "pool_row", None)
        if pool is None:
            pool = request.app.state.pool_row = _PoolRow()
        size, (held, reserved) = await pool.get(rt)
    else:
        account = user_account(key.key_id)
        size, rows = await rt.ledger.stored_balances((account,))
        held, reserved = rows.get(account, (0, 0))
    body: dict[str, object] = {
        "object": "balance",
        "account": account,
        "payer": "pool" if key is None else "user",
        "balance": held,
        "reserved": reserved,
        "available": held - reserved,
        "unit": "micro-NetworkToken",
        "settlement": rt.settlement is not None,
        "tree_size": size,
    }
    if key is None:
        body["daily_budget"] = rt.settings.pool_daily_budget
    return JSONAnswer(body)
