"""``GET /v1/ledger?request_id=``: one request's ledger entries without paging the whole
ledger (found 2026-12-04: there was no way but reading every page), by the store's index
on ``ledger_entries.request_id``, charged to the reader's row budget as the page is, and
settled to the rows it read; a request id that cannot be one is 400 in the API's shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.registry.ledger_lookup import MAX_REQUEST_ID, request_query
from tests.registry.helpers import Harness, running


async def _fill(h: Harness) -> None:
    ledger = h.runtime.ledger
    assert ledger is not None
    await ledger.append([Transfer("grant", MINT, POOL, 1_000)])
    # "req-b" three times among others, as a spend, its refund and a node's share are
    for i in range(30):
        await ledger.append(
            [Transfer("settle", POOL, MINT, 1, "req-b" if i % 10 == 3 else f"req-{i}")]
        )


async def test_the_entries_of_one_request(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await _fill(h)
        whole = (await h.client.get("/v1/ledger", params={"limit": 1000})).json()
        want = [e for e in whole["data"] if e["request_id"] == "req-b"]
        assert len(want) == 3
        got = (await h.client.get("/v1/ledger", params={"request_id": "req-b"})).json()
        size = whole["tree_size"]
        assert got == {"object": "list", "data": want, "has_more": False, "tree_size": size}
        # paged as the whole list is: limit, has_more, after
        first = (
            await h.client.get("/v1/ledger", params={"request_id": "req-b", "limit": 2})
        ).json()
        assert first["data"] == want[:2] and first["has_more"]
        after = first["data"][-1]["seq"]
        rest = await h.client.get("/v1/ledger", params={"request_id": "req-b", "after": after})
        assert rest.json()["data"] == want[2:] and not rest.json()["has_more"]
        none = (await h.client.get("/v1/ledger", params={"request_id": "req-none"})).json()
        assert none["data"] == [] and not none["has_more"]
        longest = await h.client.get("/v1/ledger", params={"request_id": "r" * MAX_REQUEST_ID})
        assert longest.status_code == 200 and longest.json()["data"] == []


@pytest.mark.parametrize("bad", ["req\x00b", "req-b\x00", "r" * (MAX_REQUEST_ID + 1), "req\nb", ""])
async def test_a_request_id_that_cannot_be_one_is_400(tmp_path: Path, bad: str) -> None:
    async with running(tmp_path) as h:
        await _fill(h)
        r = await h.client.get("/v1/ledger", params={"request_id": bad})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == "request_id", err
        assert "request_id" in err["message"]


async def test_a_lookup_is_charged_the_rows_it_read(tmp_path: Path) -> None:
    async with running(tmp_path, ledger_read_rows_per_min=40) as h:
        await _fill(h)
        # each is charged its most (10) before it runs, as a page is, and settled to the 3
        # rows it read: ten fit in a budget of 40 that keeping the charges would spend in 4
        for _ in range(10):
            r = await h.client.get("/v1/ledger", params={"request_id": "req-b", "limit": 10})
            assert r.status_code == 200, r.text
            assert len(r.json()["data"]) == 3
        # the budget still binds them: a page of 10 spends the rest, a lookup is refused
        assert (await h.client.get("/v1/ledger", params={"limit": 10})).status_code == 200
        refused = await h.client.get("/v1/ledger", params={"request_id": "req-b", "limit": 3})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"


async def test_the_lookup_is_an_index_search(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await _fill(h)
        assert h.runtime.ledger is not None
        engine = await h.runtime.ledger.engine()
        assert engine.dialect.name == "sqlite"
        sql = request_query("req-b", -1, 100).compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
        async with engine.connect() as conn:
            plan = " ".join(
                str(r[-1]) for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
        assert "USING INDEX ix_ledger_entries_request_id" in plan, plan
