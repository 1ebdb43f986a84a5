import pytest

from LLM_Mesh.core.demand import WindowCounter, explained_queue, requests_waiting


def test_window_counts_and_ages_out() -> None:
    c: WindowCounter[str] = WindowCounter(window_s=60.0, bucket_s=10.0)
    c.add("m", 0.0)
    c.add("m", 5.0, n=2)
    c.add("m", 25.0)
    c.add("x", 30.0)
    c.add("m", 31.0, n=0)  # nothing
    assert c.count("m", 30.0) == 4 and c.count("x", 30.0) == 1 and c.count("none", 30.0) == 0
    assert c.count("m", 59.9) == 4
    assert c.count("m", 60.0) == 1  # the [0, 10) bucket left the window
    assert c.counts(60.0) == {"m": 1, "x": 1}
    assert c.counts(200.0) == {} and len(c) == 0  # aged-out keys are dropped


def test_window_memory_is_bounded_per_key() -> None:
    c: WindowCounter[str] = WindowCounter(window_s=600.0, bucket_s=10.0)
    for t in range(10_000):
        c.add("m", float(t))
    assert len(c._buckets["m"]) <= c.n_buckets
    assert 590 <= c.count("m", 9_999.0) <= 600


def test_window_tolerates_a_clock_stepping_back() -> None:
    c: WindowCounter[tuple[str, str]] = WindowCounter(window_s=60.0, bucket_s=10.0)
    c.add(("m", "no_node"), 50.0)
    c.add(("m", "no_node"), 20.0)
    assert c.count(("m", "no_node"), 50.0) == 2


def test_window_rejects_bad_sizes() -> None:
    for w, b in ((0.0, 1.0), (10.0, 0.0), (10.0, 20.0)):
        with pytest.raises(ValueError):
            WindowCounter(window_s=w, bucket_s=b)


def test_requests_waiting() -> None:
    def w(i: int, g: int, c: int, q: int) -> int:
        return requests_waiting(
            gateway_in_flight=i, gateway_waiting=g, concurrency=c, reported_queued=q
        )

    assert w(0, 0, 4, 0) == 0
    assert w(3, 0, 4, 0) == 0  # all running
    assert w(7, 0, 4, 0) == 3  # 3 beyond the nodes' concurrency
    assert w(7, 0, 4, 2) == 3  # the heartbeat saw (some of) the same queue: not added
    assert w(2, 0, 4, 5) == 5  # other gateways' queue, from heartbeats
    assert w(0, 2, 0, 0) == 2  # held at the gateway with no node
    assert w(6, 2, 4, 1) == 4
    assert w(-1, -1, -1, -1) == 0


def test_window_validation_and_edges() -> None:
    for window, bucket in ((0.0, 0.0), (-1.0, 1.0), (10.0, 0.0), (10.0, 11.0)):
        with pytest.raises(ValueError, match="bucket_s <= window_s"):
            WindowCounter(window, bucket)
    c: WindowCounter[str] = WindowCounter(10, 10)  # one bucket: the window is the bucket
    assert (c.window_s, c.bucket_s, c.n_buckets) == (10.0, 10.0, 1)
    c.add("a", 5.0)
    assert c.count("a", 9.9) == 1
    assert c.count("a", 10.0) == 0 and c.counts(10.0) == {}
    half: WindowCounter[str] = WindowCounter(1.0, 0.5)  # sub-second buckets are fine
    half.add("a", 0.2)
    assert half.count("a", 0.9) == 1 and half.count("a", 1.0) == 0


def test_adding_nothing_records_nothing() -> None:
    c: WindowCounter[str] = WindowCounter(60, 10)
    c.add("a", 0.0, n=0)
    c.add("b", 0.0, n=-3)
    assert c.counts(0.0) == {} and len(c) == 0


def test_waiting_with_no_serving_concurrency() -> None:
    kw = {"gateway_waiting": 0, "reported_queued": 0}
    assert requests_waiting(gateway_in_flight=2, concurrency=0, **kw) == 2
    assert requests_waiting(gateway_in_flight=2, concurrency=-1, **kw) == 2


def test_a_nodes_queue_counts_up_to_what_the_mesh_sent_it() -> None:
    assert explained_queue(10**6, 0) == 0  # nobody sent it anything
    assert explained_queue(3, 5) == 3  # an honest queue: within what it was sent
    assert explained_queue(9, 5) == 5
    assert explained_queue(-4, 5) == 0 and explained_queue(4, -1) == 0
