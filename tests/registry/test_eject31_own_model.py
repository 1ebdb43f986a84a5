"""A node that fails a popular model's requests and declares a model no other node serves
(found 2026-12-05, ``attack31``; closed ``eject31``): its one-node pool could not spare it,
so it was never ejected for any model, stayed in the popular model's routing and earned full
uptime credit. Now it is ejected from the popular model's pool, still serves its own model
(rested there, as a one-node model's node is), and earns no credit while ejected."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_uptime_credit import MODEL, ROOM, ask, beat, full_credit

OWN = "my-finetune"
CHAT = "/v1/chat/completions"


def body(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_node_with_a_model_of_its_own_is_ejected_from_the_others_and_not_credited(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, max_attempts=1) as h:
        broken = await h.register("broken", models=[MODEL, OWN], behavior="500")
        for n in ("good1", "good2", "good3"):
            await h.register(n)
        router = h.runtime.routing.router
        assert full_credit(await beat(h, "broken", ROOM))  # serving: credited
        assert await ask(h, "broken") == 502  # a 5xx for the popular model
        assert router.outliers.is_ejected("broken")  # before: never (its own model's pool)
        assert router.ejected_for("broken", MODEL) and not router.ejected_for("broken", OWN)
        assert router.pool_counts(MODEL) == (3, 0, 1) and router.pool_counts(OWN) == (1, 0, 0)
        assert await beat(h, "broken", ROOM) == 0  # before: full credit
        for _ in range(12):  # the popular model's clients no longer meet it
            assert (await h.client.post(CHAT, json=body(MODEL))).status_code == 200
        assert len(broken.calls) == 1
        r = await h.client.post(CHAT, json=body(OWN))  # its own model: still sent to it
        assert r.status_code == 502 and len(broken.calls) == 2
        # the 502's estimate for its own model: its rest (30 s from its first failure)
        assert (r.headers["x-should-retry"], r.headers["retry-after"]) == ("true", "25")
        h.clock.advance(26)  # 31 s since: the ejection is over, back in the popular pool
        for n in ("good1", "good2", "good3"):  # live meanwhile
            assert (await h.client.post(f"/mesh/nodes/{n}/heartbeat", json=ROOM)).status_code == 200
        assert (await h.client.post(CHAT, json=body(MODEL))).status_code == 200
        assert not router.outliers.is_ejected("broken")
        assert router.pool_counts(MODEL) == (4, 0, 0)
        assert full_credit(await beat(h, "broken", ROOM))


async def test_keyed_demand_counts_a_node_kept_for_its_own_model(tmp_path: Path) -> None:
    """``Routing.keyed_at`` reads the nodes whose slots serve the model: a node ejected from
    the popular model's pool still holds its own model's slots."""
    async with running(tmp_path, max_attempts=1) as h:
        await h.register("broken", models=[MODEL, OWN], behavior="500")
        for n in ("good1", "good2", "good3"):
            await h.register(n)
        routing = h.runtime.routing
        st = routing.router.node("broken")
        assert st is not None
        assert await ask(h, "broken") == 502
        st.keyed_at = routing.clock()
        assert routing.keyed_at(OWN) == st.keyed_at  # kept there: counted
        assert routing.keyed_at(MODEL) is None  # ejected there: not counted
        assert routing.slots(OWN) == 2
