"""A restarted registry closes the due reward period before it serves (``registry/app.py``,
:meth:`~LLM_Mesh.registry.rewards.RewardTask.close_first`).

Found 2026-12-05 (session 29's note, reproduced here): every registry stopped half-way
through a period and came back periods later; a node heartbeating to the restarted registry
before its first close (the close ran in the background, beside serving) moved its last
heartbeat into the current period, so the close labelled the uptime it earned before the
stop with the due period (``core/rewards.uptime_period``), in which it was never up, and
judged it by that period's requests. The registry app runs here with its lifespan on SQLite
and an injected wall clock; the node's heartbeat is the store's, as the registry credits it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.rewards import reward_request_id
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import KEYED
from tests.registry.helpers import make_settings
from tests.registry.test_rewards import (
    EXPIRY_S,
    PERIOD_S,
    RATE,
    Clock,
    S,
    _at,
    _beat,
    _ledger,
    _node,
    _operator,
    _request,
    _rewards,
    _rows,
    _task,
)
from tests.registry.test_store import node


async def test_a_node_beating_to_a_restarted_registry_keeps_its_uptime_in_its_period(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    before = SqlStore(url)  # the registry before the stop
    await before.open()
    await _operator(before, "op")
    # a node (its real key: the app loads the keys) up from S, every registry stops at S + P/2
    key = encode_public_key(public_key_of(Ed25519PrivateKey.generate()))
    await before.claim_node_key("flaky", key, "op", 1, _at(0))
    await before.upsert_node(
        node("flaky", state="online", registered_at=_at(0), last_heartbeat_at=_at(0))
    )
    await _beat(before, "flaky", 0, PERIOD_S / 2)
    await before.record_requests(
        [_request(i, "flaky", "ok" if i == 0 else "error") for i in range(4)]
    )
    await before.close()
    clock = Clock(S + 3 * PERIOD_S + 15)  # back two periods later (due: S + 2P)
    store = SqlStore(url)
    settings = make_settings(tmp_path / "home", reward_rate=RATE, reward_period_s=PERIOD_S)
    app = create_registry_app(settings, store=store, wall_clock=clock)
    rewards = app.state.runtime.rewards
    async with app.router.lifespan_context(app):
        # serving: the node's first heartbeat to the restarted registry
        assert rewards._done == S + 2 * PERIOD_S  # closed before serving (before: not yet)
        await store.touch_heartbeat("flaky", _at(3 * PERIOD_S + 16), "online",
                                    credit_limit_s=EXPIRY_S)  # fmt: skip
        await rewards.close_due()  # the loop's tick: the due period was closed already
    after = SqlStore(url)
    await after.open()
    try:
        rows = await _rows(after.engine)
    finally:
        await after.close()
    assert set(rows) == {("flaky", S)}, sorted(rows)  # before: ("flaky", S + 2P)
    assert rows[("flaky", S)]["healthy_ms"] == PERIOD_S * 1000 // 2
    assert rows[("flaky", S)]["success"] == 400  # its own period's requests


async def test_a_node_registered_after_the_due_period_is_paid_in_its_own(
    store: SqlStore,
) -> None:
    """Found 2026-12-07 (newuser43): a registry started at 13:35 (hourly periods) closed the
    due period, 12:00, with the uptime of a node registered at 13:32, earned 13:32-13:35,
    labelled 12:00 (``reward:<12:00>``, its row too), before the node existed, and judged
    by that period's requests. Now the close leaves it (``core/rewards.registered_since``):
    the 13:00 close pays 13:32-14:00 whole, once, under 13:00."""
    await _operator(store, "op")
    await _node(store, "new", "op", up_from=PERIOD_S + 1920, up_to=PERIOD_S + 2100)
    ledger = _ledger(store)
    clock = Clock(S + PERIOD_S + 2100)  # 13:35: the due period is 12:00 (S)
    first = await _task(store, ledger, clock).close_due()
    assert first is not None and first.period_start == S
    assert first.closed == 0 and await _rows(store.engine) == {}  # before: ("new", S), 180 s
    await _beat(store, "new", PERIOD_S + 2100, 2 * PERIOD_S)
    clock.t = S + 2 * PERIOD_S + 15  # 14:00:15: the 13:00 close
    second = await _task(store, ledger, clock).close_due()
    assert second is not None and second.closed == 1
    rows = await _rows(store.engine)
    assert set(rows) == {("new", S + PERIOD_S)}, sorted(rows)
    assert rows[("new", S + PERIOD_S)]["healthy_ms"] == 1680 * 1000  # 13:32 to 14:00, whole
    rewarded = [rid for *_, rid in await _rewards(ledger)]
    assert rewarded == [reward_request_id(S + PERIOD_S, "new", KEYED)]
