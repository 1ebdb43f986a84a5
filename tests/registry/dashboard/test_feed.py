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


def test_every_read_sees_each_request_as_if_fed_at_once() -> None:
    """Requests are fed to the series in batches (``feed.py``): a read, whenever it comes,
    sees what feeding each request when it was observed made, times and order kept."""
    from LLM_Mesh.core.traffic import TrafficSeries

    now = [T0]
    feed = TrafficFeed(clock=lambda: now[0])
    direct = TrafficSeries()
    outcomes = ["ok", "ok", "error", "cancelled"]
    for i in range(300):
        now[0] = T0 + i * 0.7  # across 5 s buckets and 60 s rows
        r = rec(outcomes[i % 4], latency=1.0 + i % 17, tokens=i % 5)
        feed.observe(r)
        direct.observe(
            now[0], ok=r.outcome == "ok", failed=r.outcome == "error", latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms, tokens=r.completion_tokens, node_id=r.node_id, model=r.model,
        )  # fmt: skip
        if i % 37 == 0 or i == 299:  # a read now and then, the last after everything
            t = now[0] + 1
            assert feed.series.points(t) == direct.points(t)
            assert feed.series.summary(t) == direct.summary(t)
            assert feed.series.history(NODE, "n1", t) == direct.history(NODE, "n1", t)
            assert feed.series.totals(MODEL, t) == direct.totals(MODEL, t)


def test_without_a_read_the_requests_waiting_stay_bounded() -> None:
    from LLM_Mesh.registry.dashboard.feed import PENDING

    feed = TrafficFeed(clock=lambda: T0)
    for _ in range(PENDING * 2 + 3):
        feed.observe(rec("ok"))
        assert len(feed._pending) < PENDING  # fed once that many wait, read or not
    assert len(feed._pending) == 3
    assert feed.series.summary(T0 + 1).requests_window == PENDING * 2 + 3
