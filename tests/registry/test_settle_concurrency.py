"""200 concurrent requests against a balance that covers about 50, through two registry
processes' gateways on one database (SQLite file and PostgreSQL).

The reservation is the database's (``registry/settle_db.py``): whatever interleaving,
no request runs unless its estimate was reserved, the balance never goes below zero,
it ends at the start less the sum of what was settled, every credit has its debit, and
``ledger verify``'s audit passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.ledger_entry import NETWORK
from LLM_Mesh.core.pricing import estimate, request_cost
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.helpers import FakeNodes, Harness, fund, running

MODEL = "mistral-7b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
N = 200
COVERS = 50


class SlowNodes(FakeNodes):
    """Fake nodes that take 20 ms to answer, so many requests are in flight at once."""

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        await asyncio.sleep(0.02)
        return super().handler(request)


async def test_200_concurrent_requests_never_overspend(database_url: str, tmp_path: Path) -> None:
    spec = get_spec(MODEL)
    assert spec is not None
    est = estimate(spec.price, "hi", 5, spec.context_length, 1)
    cost = request_cost(spec.price, 10, 5)  # the fake node's usage
    start = COVERS * est + est // 2
    nodes = SlowNodes()
    async with contextlib.AsyncExitStack() as stack:
        gateways: list[Harness] = []
        for name in ("one", "two"):
            h = await stack.enter_async_context(
                running(
                    tmp_path / name, store=SqlStore(database_url), nodes=nodes, pool_daily_budget=0
                )
            )
            if not gateways:
                node = await h.register("a", models=[MODEL], max_concurrency=1000, max_queue=1000)
            else:
                r = await h.client.post("/mesh/nodes", json=_registration())
                assert r.status_code == 200
            assert h.runtime.settlement is not None
            h.runtime.settlement.note_operator("a", "alice")
            gateways.append(h)
        made = await create_api_key(gateways[0].store)
        assert made is not None
        key, account = made[0], user_account(made[1].key_id)
        await fund(gateways[0], account, start)
        for h in gateways:  # the key in each gateway's cache (uncached look-ups are limited)
            assert await h.runtime.keys.lookup(key) is not None

        async def one(i: int) -> int:
            h = gateways[i % 2]
            r = await h.client.post(CHAT, json=BODY, headers={"Authorization": f"Bearer {key}"})
            return r.status_code

        codes = await asyncio.gather(*(one(i) for i in range(N)))
        for h in gateways:
            assert h.runtime.settlement is not None
            await h.runtime.settlement.flush()
            # the gateways' reservation leases, idle now, back (part of reserved until then)
            h.runtime.settlement.give_back(float("inf"))
            await h.runtime.settlement.flush()
        ok = codes.count(200)
        assert set(codes) <= {200, 402}, codes
        assert COVERS <= ok < N and codes.count(402) == N - ok
        assert len(node.calls) == ok  # a refused request never reached the node

        s = gateways[0].runtime.settlement
        ledger = gateways[0].runtime.ledger
        assert s is not None and ledger is not None
        balance, reserved = await s.balance(account)
        entries, more = await ledger.entries(-1, 10_000)
        assert not more
        paid = sum(e.amount for e in entries if e.from_account == account)
        assert balance >= 0 and reserved == 0
        assert balance == start - paid == start - ok * cost
        by_request: dict[str | None, int] = {}
        for e in entries:
            if e.from_account == account:
                by_request[e.request_id] = by_request.get(e.request_id, 0) + e.amount
        assert len(by_request) == ok and set(by_request.values()) == {cost}
        # every credit has its debit: the accounts sum to zero, and the stored balances
        # (kept by each append) are the ledger's
        sums = await ledger.balances()
        assert sum(sums.values()) == 0
        assert sums[operator_account("alice")] + sums[NETWORK] == paid
        for acct, amount in sums.items():
            assert (await s.balance(acct))[0] == amount
        report = await audit(StoreSource(ledger, gateways[0].settings.ledger_origin))
        assert report.ok, report.findings
        assert report.balances[account] == balance


CHAT = "/v1/chat/completions"


def _registration() -> dict[str, object]:
    from tests.registry.helpers import registration

    return registration("a", models=[MODEL], max_concurrency=1000, max_queue=1000)
