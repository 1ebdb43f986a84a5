"""A lone registry (SQLite) keeps client request ids in its process: across a restart, a
paid request's id is found in the ledger's rows, never run and paid again
(``registry/paid_ids.py``; found 2026-12-04: the retry ran and was paid a second time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.registry.paid_ids import PaidIds
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import Harness, running
from tests.registry.test_charge import BODY, CHAT, COST, bearer, new_user, register, settlement
from tests.registry.test_paid_once import _settled

COMPLETIONS = "/v1/completions"


async def _ask(h: Harness, headers: dict[str, str], stream: bool) -> Any:
    return await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=headers)


def _cost(r: Any, stream: bool) -> int:
    if not stream:
        return int(r.json()["mesh"]["cost"])
    final = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    return int(final[-1]["mesh"]["cost"])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_paid_request_retried_after_a_restart_is_not_run_nor_paid_again(
    tmp_path: Path, stream: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), "X-Request-Id": "r-1"}
        r = await _ask(h, headers, stream)
        assert r.status_code == 200, r.text
        cost = _cost(r, stream)
        assert await _settled(settlement(h), account, (1000 - cost, 0)) == (1000 - cost, 0)
    async with running(tmp_path, store=SqlStore(url)) as h:  # the registry restarted
        node = await register(h, "a", "alice")
        for body_stream in (stream, not stream):
            again = await _ask(h, headers, body_stream)
            assert again.status_code == 409, again.text  # before: 200, run and paid again
            err = again.json()["error"]
            assert err["code"] == "duplicate_request" and "restarted" in err["message"], err
        assert not node.calls
        s = settlement(h)
        assert await _settled(s, account, (1000 - cost, 0)) == (1000 - cost, 0)
        # another id of the same key runs; the same id of another key too (its own scope)
        other = {**bearer(key), "X-Request-Id": "r-2"}
        assert (await _ask(h, other, stream)).status_code == 200
        key2, account2 = await new_user(h, 1000)
        assert (await _ask(h, {**bearer(key2), "X-Request-Id": "r-1"}, stream)).status_code == 200
        assert await _settled(s, account2, (1000 - cost, 0)) == (1000 - cost, 0)
        assert len(node.calls) == 2
        # the books across the restart: every balance is its entries' (ledger verify's audit)
        report = await audit(StoreSource(h.runtime.ledger, h.settings.ledger_origin))
        assert report.ok, report.findings


async def test_a_request_not_paid_before_the_restart_runs_after_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice", behavior="500")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), "X-Request-Id": "r-1"}
        assert (await h.client.post(CHAT, json=BODY, headers=headers)).status_code == 502
        assert await _settled(settlement(h), account, (1000, 0)) == (1000, 0)
    async with running(tmp_path, store=SqlStore(url)) as h:
        node = await register(h, "a", "alice")
        r = await h.client.post(CHAT, json=BODY, headers=headers)
        assert r.status_code == 200, r.text
        assert len(node.calls) == 1
        assert await _settled(settlement(h), account, (1000 - COST, 0)) == (1000 - COST, 0)


async def test_ids_are_looked_up_only_in_the_window_after_a_start_and_only_if_scoped() -> None:
    """A keyed id is its key's; the pool's only by a scoped tag (``PaidIds.scoped``)."""
    now = [1000.0]
    asked: list[str] = []

    async def engine() -> Any:
        asked.append("engine")
        raise AssertionError("no read expected")

    paid = PaidIds(engine, 600.0, lambda: now[0])
    assert await paid.refusal("r-1", "c-" + "0" * 24 + "~" + "1" * 16, POOL) is None
    assert await paid.refusal("r-1", "c-" + "0" * 24 + "~" + "1" * 16 + ".0a1b2c3d", POOL) is None
    assert await paid.refusal("r-1", "req-" + "0" * 32, "user:x") is None  # not a client id
    now[0] += 600.0
    assert await paid.refusal("r-1", "c-" + "0" * 24 + "~" + "1" * 16, "user:x") is None
    assert not asked


async def test_the_same_id_on_the_other_path_runs_after_a_restart_as_before_it(
    tmp_path: Path,
) -> None:
    """The process's check keys an id by its path (``admit.IdempotencyCheck``): a keyed
    client's id paid on /v1/chat/completions, sent again to /v1/completions, runs. After a
    restart the ledger lookup had no path: that request was refused 409 (found 2026-12-04,
    review). Now the settlement key carries a tag of the path; a retry on the same path is
    still refused."""
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    completion = {"model": BODY["model"], "prompt": "hi", "max_tokens": 5}
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), "X-Request-Id": "r-1"}
        assert (await _ask(h, headers, False)).status_code == 200
        assert await _settled(settlement(h), account, (1000 - COST, 0)) == (1000 - COST, 0)
    async with running(tmp_path, store=SqlStore(url)) as h:  # the registry restarted
        node = await register(h, "a", "alice")
        other = await h.client.post(COMPLETIONS, json=completion, headers=headers)
        assert other.status_code == 200, other.text  # before: 409 duplicate_request
        assert len(node.calls) == 1
        again = await _ask(h, headers, False)  # the paid chat request: still never run again
        assert again.status_code == 409, again.text
        assert len(node.calls) == 1


async def test_an_anonymous_request_paid_is_not_run_again_after_a_restart_in_its_scope(
    tmp_path: Path,
) -> None:
    """Anonymous ids are scoped by address and prompt in the process's check
    (``admit.IdempotencyCheck``); after a restart the same scope is looked up in the pool's
    rows (the settlement key's tag binds it, keyed by the ledger's secret: no address in the
    ledger). Found 2026-12-04: not looked up, so the pool ran and paid the retry again."""
    from tests.registry.test_access import from_address

    url = f"sqlite:///{tmp_path / 'lone.db'}"
    headers = {"X-Request-Id": "r-1"}
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        async with from_address(h, "203.0.113.7") as c:
            r = await c.post(CHAT, json=BODY, headers=headers)
        assert r.status_code == 200, r.text
        assert "203.0.113.7" not in r.json()["mesh"]["ledger_request_id"]
        s = settlement(h)
        await _settled(s, POOL, (-1, -1))
        pool = await s.balance(POOL)
    async with running(tmp_path, store=SqlStore(url)) as h:  # the registry restarted
        node = await register(h, "a", "alice")
        for stream in (False, True):
            async with from_address(h, "203.0.113.7") as c:
                again = await c.post(CHAT, json={**BODY, "stream": stream}, headers=headers)
            assert again.status_code == 409, again.text  # before: 200, run and paid again
            assert again.json()["error"]["code"] == "duplicate_request"
        assert not node.calls
        s = settlement(h)
        assert await _settled(s, POOL, pool) == pool
        # another address's id runs, as before the restart; so does another prompt's
        async with from_address(h, "198.51.100.9") as c:
            assert (await c.post(CHAT, json=BODY, headers=headers)).status_code == 200
        other = {**BODY, "messages": [{"role": "user", "content": "hello"}]}
        async with from_address(h, "203.0.113.7") as c:
            assert (await c.post(CHAT, json=other, headers=headers)).status_code == 200
        assert len(node.calls) == 2
        report = await audit(StoreSource(h.runtime.ledger, h.settings.ledger_origin))
        assert report.ok, report.findings


async def test_the_same_id_of_another_key_runs_after_a_restart_as_before_it(
    tmp_path: Path,
) -> None:
    """An id's scope is its API key, in the process and after a restart alike: the payer
    looked up is the key's own account (``user_account`` of its key id), never a user's
    other keys'. Two keys that each paid ``r-1`` are each refused it after the restart; a
    third key's ``r-1`` runs, as it would have before."""
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        keys = [await new_user(h, 1000) for _ in range(3)]
        for key, _ in keys[:2]:
            r = await _ask(h, {**bearer(key), "X-Request-Id": "r-1"}, False)
            assert r.status_code == 200, r.text  # the second key too: its own scope
        for _, account in keys[:2]:
            assert await _settled(settlement(h), account, (1000 - COST, 0)) == (1000 - COST, 0)
    async with running(tmp_path, store=SqlStore(url)) as h:  # the registry restarted
        node = await register(h, "a", "alice")
        for key, _ in keys[:2]:
            again = await _ask(h, {**bearer(key), "X-Request-Id": "r-1"}, False)
            assert again.status_code == 409, again.text
        third = await _ask(h, {**bearer(keys[2][0]), "X-Request-Id": "r-1"}, False)
        assert third.status_code == 200, third.text
        assert len(node.calls) == 1


async def test_an_anonymous_id_whose_key_cannot_be_made_is_refused_503_unrun(
    tmp_path: Path,
) -> None:
    """The settlement database down when an anonymous id's key is scoped (the ledger's
    secret not yet read by this process): 503 ``settlement_unavailable``, Retry-After 1,
    nothing run or reserved, as a reservation that failed; the next request runs."""
    from tests.registry.test_access import from_address

    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        node = await register(h, "a", "alice")
        paid = h.runtime.paid_ids
        assert paid is not None
        engine = paid.engine

        async def down() -> Any:
            raise OSError("connection refused")

        paid.engine = down
        async with from_address(h, "203.0.113.7") as c:
            r = await c.post(CHAT, json=BODY, headers={"X-Request-Id": "r-1"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "settlement_unavailable"
        assert r.headers["retry-after"] == "1" and not node.calls
        paid.engine = engine
        async with from_address(h, "203.0.113.7") as c:
            r = await c.post(CHAT, json=BODY, headers={"X-Request-Id": "r-1"})
        assert r.status_code == 200, r.text  # not held as the id's answer
        assert len(node.calls) == 1
