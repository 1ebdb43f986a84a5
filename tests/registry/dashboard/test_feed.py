"""The request writer's records feed the dashboard's series: every outcome, once."""

from __future__ import annotations

from datetime import datetime, timezone

from LLM_Mesh.core.traffic import MODEL, NODE
from LLM_Mesh.registry.dashboard.feed import TrafficFeed
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.request_log import RequestWriter

T0 = 1_699_999_980.0


def rec(outcome: str, latency: float | None = 10.0, tokens: int = 3) -> RequestRecord:
    return RequestRecord(
        request_id="r", node_id="n1", model="m", stream=True, outcome=outcome,
        error_code=None if outcome == "ok" else "x", prompt_tokens=1, completion_tokens=tokens,
        latency_ms=latency, ttft_ms=2.0, cost=0.0, created_at=datetime.now(timezone.utc),
    )  # fmt: skip


def test_each_outcome_is_counted_as_what_it_is() -> None:
    feed = TrafficFeed(clock=lambda: T0)
    writer = RequestWriter(MemoryStore())
    writer.observers.append(feed.observe)
    writer.submit(rec("ok"))
    writer.submit(rec("error", latency=900.0, tokens=0))
    writer.submit(rec("cancelled", latency=50.0, tokens=2))
    p = feed.series.points(T0 + 1)[-1]
    assert (p.requests, p.errors, p.tokens) == (3, 1, 5)
    # only the answered request's latency and ttft are samples
    assert p.latency_p95_ms is not None and p.latency_p95_ms < 11
    assert feed.series.totals(NODE, T0)["n1"].requests == 3
    assert feed.series.totals(MODEL, T0)["m"].errors == 1


def test_the_registry_app_feeds_its_dashboard(inprocess_mesh) -> None:  # type: ignore[no-untyped-def]
    from tests.registry.dashboard.conftest import MODEL as M
    from tests.registry.dashboard.conftest import chat

    inprocess_mesh.add_node(M)
    chat(inprocess_mesh, 2)
    dash = inprocess_mesh.app.state.dashboard
    assert dash.feed.series.summary(dash.now()).requests_window == 2
