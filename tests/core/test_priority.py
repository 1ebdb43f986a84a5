"""The order of a node's admission queue: keyed waiters first, FIFO within a class, and an
ordinary waiter never passed over for ever (core/priority.py)."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.priority import (
    KEYED,
    MAX_ORDINARY_WAIT_S,
    MAX_PASSED_OVER,
    PRIORITY_FIELD,
    Waiter,
    is_keyed,
    next_waiter,
    pass_over,
)


def line(classes: str, now: float = 0.0) -> list[Waiter]:
    """``"aak"``: two ordinary waiters, then a keyed one, in the order they came."""
    return [Waiter(c == "k", now) for c in classes]


def serve_all(waiters: list[Waiter], now: float = 0.0) -> list[int]:
    """The order the whole line is served in (indices into ``waiters``)."""
    left = list(enumerate(waiters))
    order = []
    while left:
        i = next_waiter([w for _, w in left], now)
        pass_over([w for _, w in left], i)
        order.append(left.pop(i)[0])
    return order


def test_the_field_and_its_one_keyed_value() -> None:
    assert PRIORITY_FIELD == "mesh_priority"
    assert is_keyed(KEYED)
    for other in (None, "", "KEYED", "high", 1, True, ["keyed"], {"keyed": 1}):
        assert not is_keyed(other), other


def test_without_keyed_waiters_first_come_first_served() -> None:
    assert serve_all(line("aaaa")) == [0, 1, 2, 3]


def test_keyed_waiters_overtake_ordinary_ones_fifo_within_each_class() -> None:
    # a a k a k: both keyed first (in their order), then the ordinary ones in theirs
    assert serve_all(line("aakak")) == [2, 4, 0, 1, 3]


def test_only_keyed_waiters_first_come_first_served() -> None:
    assert serve_all(line("kkk")) == [0, 1, 2]


def test_a_keyed_waiter_behind_keyed_ones_waits_its_turn() -> None:
    assert next_waiter(line("kak"), 0.0) == 0


def test_passing_over_counts_only_the_ordinary_waiters_ahead() -> None:
    w = line("akak")
    pass_over(w, 2)
    assert [x.passed for x in w] == [1, 0, 0, 0]


def test_an_ordinary_waiter_passed_over_n_times_goes_next() -> None:
    w = line("a" + "k" * (MAX_PASSED_OVER + 3))
    order = serve_all(w)
    # the ordinary waiter is overtaken MAX_PASSED_OVER times, then served
    assert order.index(0) == MAX_PASSED_OVER
    assert w[0].passed == MAX_PASSED_OVER


def test_an_ordinary_waiter_waiting_too_long_goes_next() -> None:
    w = [Waiter(False, 0.0), Waiter(True, 5.0)]
    assert next_waiter(w, MAX_ORDINARY_WAIT_S - 0.001) == 1
    assert next_waiter(w, MAX_ORDINARY_WAIT_S) == 0


@pytest.mark.parametrize("seed", range(20))
def test_under_a_stream_of_keyed_requests_no_ordinary_waiter_starves(seed: int) -> None:
    """Keyed requests keep coming (one or two per slot freed), ordinary ones too: each
    ordinary waiter is served after at most MAX_PASSED_OVER keyed ones overtook it."""
    rng = random.Random(seed)
    waiting: list[tuple[int, Waiter]] = []
    served_after: dict[int, int] = {}  # ordinary id -> keyed served while it waited
    arrived = 0
    for _ in range(400):
        for _ in range(rng.randint(1, 2)):
            waiting.append((arrived, Waiter(rng.random() < 0.7, 0.0)))
            arrived += 1
        i = next_waiter([w for _, w in waiting], 0.0)
        pass_over([w for _, w in waiting], i)
        rid, w = waiting.pop(i)
        if not w.keyed:
            served_after[rid] = w.passed
    assert served_after, "no ordinary request was served"
    assert max(served_after.values()) <= MAX_PASSED_OVER


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"m","prompt":"x"}',
        b' \n\t{ "model" : "m", "prompt" : "\\u00e9t\xc3\xa9" }\n',
        b"{}",
        b"{ }",
    ],
)
def test_a_keyed_requests_bytes_are_the_clients_with_the_class_first(raw: bytes) -> None:
    import json

    from LLM_Mesh.core.priority import keyed_raw

    body = json.loads(raw)
    out = keyed_raw(raw, body)
    assert json.loads(out) == {PRIORITY_FIELD: KEYED, **body}
    assert out.replace(b'"mesh_priority":"keyed"', b"").replace(b",", b"") == raw.replace(
        b",", b""
    )  # nothing else changed


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be", "utf-8-sig"])
def test_a_body_in_another_encoding_is_written_again(encoding: str) -> None:
    import json

    from LLM_Mesh.core.priority import keyed_raw

    body = {"model": "m", "prompt": "é"}
    out = keyed_raw(json.dumps(body).encode(encoding), body)
    assert json.loads(out) == {PRIORITY_FIELD: KEYED, **body}
