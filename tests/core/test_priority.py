"""The order of a node's admission queue: keyed waiters first, FIFO within a class, and an
ordinary waiter never passed over for ever (core/priority.py)."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.priority import (
    KEYED,
    KEYED_SEEN_S,
    MAX_ORDINARY_WAIT_S,
    MAX_PASSED_OVER,
    PRIORITY_FIELD,
    Waiter,
    admits,
    is_keyed,
    keeps_places,
    kept_places,
    keyed_age_s,
    next_waiter,
    pass_over,
    reported_keyed_at,
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


# --- places kept for keyed requests -------------------------------------------------------


@pytest.mark.parametrize(
    ("max_queue", "kept"), [(0, 0), (1, 0), (2, 1), (3, 1), (7, 1), (8, 2), (9, 2), (16, 4)]
)
def test_the_last_quarter_of_the_line_is_kept_at_least_one_never_all(
    max_queue: int, kept: int
) -> None:
    assert kept_places(max_queue) == kept
    assert kept_places(max_queue, share=1.0) == max(0, max_queue - 1)  # never every place


def test_an_ordinary_request_finding_only_kept_places_is_refused_a_keyed_one_is_not() -> None:
    for queued in range(8):  # max_queue 8: 2 places kept from ordinary waiters
        assert admits(queued, queued, 8, keyed=True, keep=True)
        assert admits(queued, queued, 8, keyed=False, keep=True) == (queued < 6)
        assert admits(queued, queued, 8, keyed=False, keep=False)  # nothing kept: as before
    for keyed in (False, True):
        for keep in (False, True):
            assert not admits(8, 0, 8, keyed=keyed, keep=keep)  # full is full
            assert not admits(0, 0, 0, keyed=keyed, keep=keep)
    assert admits(0, 0, 1, keyed=False, keep=True)  # a line of one keeps nothing


def test_keyed_waiters_filling_the_line_leave_ordinary_requests_its_free_places() -> None:
    """Kept from ordinary requests, not for keyed ones alone: else a keyed flood that
    keeps the line full shuts ordinary requests out (tests/simulator/test_scenarios.py)."""
    assert admits(7, 0, 8, keyed=False, keep=True)
    assert admits(7, 5, 8, keyed=False, keep=True)
    assert not admits(7, 6, 8, keyed=False, keep=True)


def test_places_are_kept_only_while_a_keyed_request_came_lately() -> None:
    assert not keeps_places(None, 1000.0)  # never one (an older gateway): as before
    assert keeps_places(1000.0, 1000.0)
    assert keeps_places(1000.0, 1000.0 + KEYED_SEEN_S - 1)
    assert not keeps_places(1000.0, 1000.0 + KEYED_SEEN_S)


def test_a_node_says_its_keyed_age_while_it_keeps_places_and_a_reader_turns_it_back() -> None:
    """What a heartbeat says (``keyed_age_s``) and when a replica takes the keyed request
    to have come (``reported_keyed_at``): ``None`` for none, or once the window passed,
    so a reader keeps places exactly while the node does."""
    assert keyed_age_s(None, 100.0) is None
    assert keyed_age_s(100.0, 100.0) == 0.0
    assert keyed_age_s(100.0, 112.3456) == 12.346
    assert keyed_age_s(100.0, 100.0 + KEYED_SEEN_S) is None
    assert reported_keyed_at(None, 50.0) is None
    assert reported_keyed_at(12.5, 50.0) == 37.5
    assert keeps_places(reported_keyed_at(12.5, 50.0), 50.0)
    for out in (KEYED_SEEN_S, KEYED_SEEN_S + 1, -0.5, float("nan"), float("inf")):
        assert reported_keyed_at(out, 50.0) is None, out


def test_an_ordinary_waiter_is_due_by_its_own_wait_late_on_the_clock() -> None:
    waiters = [Waiter(False, 10_000.0), Waiter(True, 10_000.5)]
    assert next_waiter(waiters, 10_001.0) == 1  # waited 1 s: the keyed one first
    assert next_waiter(waiters, 10_000.0 + MAX_ORDINARY_WAIT_S) == 0


def test_a_nodes_keyed_age_within_another_window() -> None:
    assert keyed_age_s(100.0, 104.0, window_s=5.0) == 4.0
    assert keyed_age_s(100.0, 105.0, window_s=5.0) is None
    assert keyed_age_s(100.0, 110.0, window_s=KEYED_SEEN_S + 20) == 10.0


def test_an_age_of_zero_or_under_a_second_is_reported() -> None:
    assert reported_keyed_at(0.0, 50.0) == 50.0  # the keyed request came at the heartbeat
    assert reported_keyed_at(0.5, 50.0) == 49.5


def test_a_body_with_white_space_after_its_object_gets_the_member_alone() -> None:
    import json

    from LLM_Mesh.core.priority import keyed_raw

    for raw in (b"{}\n", b"{}\r\n", b"{ } "):
        out = keyed_raw(raw, {})
        assert json.loads(out) == {PRIORITY_FIELD: KEYED}, out


def test_a_body_written_again_is_compact_utf_8() -> None:
    import json

    from LLM_Mesh.core.priority import keyed_raw

    body = {"model": "m", "prompt": "é"}
    out = keyed_raw(json.dumps(body).encode("utf-16"), body)
    assert out == '{"mesh_priority":"keyed","model":"m","prompt":"é"}'.encode()
