"""The stream bounds' rules (``core/stream_guard.py``): pure, no sockets, no clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from LLM_Mesh.core.answer_text import choice_fault, chunk_text
from LLM_Mesh.core.delivered import chunk_bytes
from LLM_Mesh.core.pricing import completion_bound
from LLM_Mesh.core.stream_guard import (
    MAX_CONTEXT,
    MAX_SHARERS,
    OVER,
    PADDED,
    SLACK_EVENTS,
    SharedTime,
    StreamFloor,
    carries_output,
    chunk_reading,
    node_context,
    over_limit,
    overrun,
    sharers,
    slow_at,
    token_limit,
)


def test_over_limit_counts_tokens_exactly_and_events_with_slack() -> None:
    assert not over_limit(8, 8, 8 + SLACK_EVENTS)  # the limit, and role/finish/usage chunks
    assert over_limit(8, 9, 9)  # one token more
    assert over_limit(8, 2, 9 + SLACK_EVENTS)  # empty deltas past the slack
    assert not over_limit(1, 1, 1 + SLACK_EVENTS)


def test_an_overrun_with_too_little_output_is_padding_not_the_limit() -> None:
    assert overrun(8, 8, 8, 8 + SLACK_EVENTS) == 0  # within its events
    assert overrun(8, 9, 9, 9) == OVER  # one token more: cut at the limit, its normal end
    assert overrun(8, 8, 8, 9 + SLACK_EVENTS) == OVER  # its limit, then empty deltas
    assert overrun(8, 2, 2, 9 + SLACK_EVENTS) == PADDED  # 2 tokens, then empty deltas
    assert overrun(8, 0, 0, 9 + SLACK_EVENTS) == PADDED  # an answer of empty events
    assert overrun(8, 2, 8, 9 + SLACK_EVENTS) == OVER  # output in other fields counts


_HEAD = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _chunk(delta: object = None, **choice: object) -> dict[str, object]:
    if delta is not None:
        choice["delta"] = delta
    return {**_HEAD, "choices": [{"index": 0, **choice}]}


@pytest.mark.parametrize(
    ("obj", "output"),
    [
        (_chunk({"role": "assistant"}), False),  # OpenAI's first chat chunk
        (_chunk({}), False),
        (_chunk({"content": ""}), False),
        (_chunk({"content": None}), False),
        (_chunk({}, finish_reason="stop"), False),
        ({**_HEAD, "choices": []}, False),
        ({**_HEAD, "choices": [], "usage": {"completion_tokens": 9}}, False),  # the final one
        (_chunk(text=""), False),  # a completion's empty piece
        (_chunk({"role": "assistant", "content": "Hi"}), True),
        (_chunk({"content": " "}), True),
        (_chunk(text="Hi"), True),
        (_chunk({"reasoning_content": "hm"}), True),
        (_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}), True),
        (_chunk({"x_pad": "zzzz"}), False),  # a field no client reads
    ],
)
def test_only_an_event_carrying_output_counts(obj: dict[str, object], output: bool) -> None:
    assert carries_output(obj) is output


def test_a_request_without_max_tokens_is_bounded_by_the_context_the_estimate_uses() -> None:
    assert completion_bound(30, 8, 4096) == 8
    assert completion_bound(30, 0, 4096) == 4096 - 30  # the context less the prompt's tokens
    assert completion_bound(10**6, 0, 4096) == 1  # at least one token


FLOOR = StreamFloor(min_rate=0.25, grace_s=60.0, first_token_s=180.0)


def test_before_the_first_token_the_part_has_first_token_s() -> None:
    assert slow_at(FLOOR, 100.0, None, 5) == 280.0


def test_after_the_first_token_the_average_must_stay_above_the_floor() -> None:
    first = 110.0
    assert slow_at(FLOOR, 100.0, first, 0) == first + 60.0
    assert slow_at(FLOOR, 100.0, first, 10) == first + 60.0 + 40.0
    # a 1 token/s node (a big model on a weak CPU) keeps ahead of the moment for ever
    for t in (200.0, 1_000.0, 10_000.0):
        assert t < slow_at(FLOOR, 100.0, first, int(t - first))
    # a node trickling a token every 119 s (inside the read timeout) falls behind at once
    assert first + 119.0 > slow_at(FLOOR, 100.0, first, 2)


def test_a_stall_within_the_grace_is_forgiven() -> None:
    """50 tokens at 10/s, then 3 minutes of nothing: still above the floor."""
    first = 0.0
    assert first + 5.0 + 180.0 < slow_at(FLOOR, 0.0, first, 50)


def test_no_floor_is_never_too_slow() -> None:
    off = StreamFloor(min_rate=0.0)
    assert slow_at(off, 0.0, None, 0) == math.inf
    assert slow_at(off, 0.0, 1.0, 0) == math.inf


@pytest.mark.parametrize("field", ["min_rate", "grace_s", "first_token_s"])
@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan])
def test_a_floor_must_be_finite_and_not_negative(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        StreamFloor(**{field: value})


def test_a_nodes_declared_context_counts_up_to_max_context() -> None:
    assert node_context(8192, 4096) == 8192
    assert node_context(None, 4096) == 4096  # none declared: the default
    for odd in (0, -5, True, 2.5, "9"):
        assert node_context(odd, 4096) == 4096
    assert node_context(10**12, 4096) == MAX_CONTEXT  # a hostile declaration: bounded
    assert node_context(None, 10**12) == MAX_CONTEXT


def test_the_token_limit_is_max_tokens_else_the_context_per_choice() -> None:
    assert token_limit(8, 4096) == 8
    assert token_limit(0, 4096) == 4096
    assert token_limit(0, 4096, choices=2, echo=True) == 2 * 4096 + 1
    assert token_limit(0, 0) == 1


def test_a_node_alone_loses_no_time() -> None:
    shares = SharedTime()
    assert shares.lost("a", 5.0) == 0.0  # nothing in flight
    shares.begin("a", 0.0)
    assert shares.lost("a", 100.0) == 0.0
    shares.end("a", 100.0)
    assert shares.in_flight("a") == 0 and shares.lost("a", 200.0) == 0.0


def test_k_requests_on_a_node_each_lose_all_but_one_kth_of_its_time() -> None:
    shares = SharedTime()
    for _ in range(4):
        shares.begin("a", 0.0)
    shares.begin("b", 0.0)  # another node's load is not a's
    assert shares.in_flight("a") == 4
    assert shares.lost("a", 40.0) == pytest.approx(30.0)
    assert shares.lost("b", 40.0) == 0.0
    shares.end("a", 40.0)  # 3 left: 2/3 of each second lost from here
    assert shares.lost("a", 70.0) == pytest.approx(30.0 + 20.0)
    shares.end("a", 70.0)
    shares.end("a", 70.0)  # alone again: it loses nothing more
    assert shares.lost("a", 1_000.0) == pytest.approx(50.0)


def _cut_at(floor: StreamFloor, shares: SharedTime, node: str, gap_s: float,
            streams: int, events: int = 400, slots: int = MAX_SHARERS) -> float | None:  # fmt: skip
    """When the first of ``streams`` streams of one node is too slow, as the gateway
    checks it (``send_stream``: the moment plus what its node lost since its first token),
    when the node sends one event of one of them every ``gap_s`` seconds, in turn
    (its rate divided among them); ``None``: never within ``events`` events each."""
    for _ in range(streams):
        shares.begin(node, 0.0, slots, slots)
    now, first, lost0 = 0.0, 0.0, 0.0  # each stream's first token at 0 (a burst)
    for n in range(1, events + 1):
        for _ in range(streams):
            now += gap_s
            moment = slow_at(floor, 0.0, first, n - 1) + shares.lost(node, now) - lost0
            if now > moment:
                return now
    return None


def test_the_floor_holds_per_node_not_per_request() -> None:
    """A node at 1.6 events a second in all: alone it keeps above a floor of 1/s; with 4
    streams each gets 0.4/s and is held to 1/4 of the floor, so none is cut; a node at
    0.4/s on its only stream is cut (its share is the whole second)."""
    floor = StreamFloor(min_rate=1.0, grace_s=2.0)
    assert _cut_at(floor, SharedTime(), "n", 1 / 1.6, streams=1) is None
    assert _cut_at(floor, SharedTime(), "n", 1 / 1.6, streams=4) is None  # before: cut at ~5 s
    assert _cut_at(floor, SharedTime(), "n", 4 / 1.6, streams=1) is not None
    # and 4 streams of a node too slow in all (0.8/s together) are cut
    assert _cut_at(floor, SharedTime(), "n", 1 / 0.8, streams=4) is not None


def test_the_requests_sharing_a_node_are_counted_within_bounds() -> None:
    assert sharers(0, 4) == 1  # a part alone: the whole second
    assert sharers(3, 4) == 3
    assert sharers(10, 4) == 4  # no more than the node declares
    assert sharers(10**6, 10**6) == MAX_SHARERS == 8  # nor more than 8, whatever it declares


def test_other_replicas_requests_on_a_node_share_its_time() -> None:
    """Found 2026-12-03: the floor counted only this gateway's requests on the node. One
    here and 3 another replica published there: each loses 3/4 of every second."""
    shares = SharedTime()
    shares.begin("a", 0.0, 4, 12, others=3)
    assert shares.lost("a", 40.0) == pytest.approx(30.0)
    shares.set_others("a", 0, 40.0)  # the other replica's requests ended
    assert shares.lost("a", 100.0) == pytest.approx(30.0)
    shares.set_others("a", 1, 100.0)
    assert shares.lost("a", 120.0) == pytest.approx(40.0)
    shares.set_others("b", 5, 120.0)  # nothing of this gateway's on b: nothing to share
    assert shares.nodes() == ["a"] and shares.lost("b", 200.0) == 0.0


def test_a_streaming_part_shares_its_node_with_at_most_its_declared_slots() -> None:
    """Found 2026-12-03: a node gathering ``k`` requests was held to floor/``k`` per stream.
    A node declaring 1 slot and a queue of 8 with 9 requests: a part after its first token
    shares it with nobody (the others wait in its queue); one waiting for its first token
    shares it with at most 8 (``MAX_SHARERS``)."""
    shares = SharedTime()
    for _ in range(9):
        shares.begin("a", 0.0, 1, 9)
    assert shares.lost("a", 80.0) == 0.0
    assert shares.lost("a", 80.0, streaming=False) == pytest.approx(70.0)


def test_a_trickling_node_is_cut_in_bounded_time_however_many_streams_it_gathers() -> None:
    """Found 2026-12-03: 4 streams at 0.4 events/s each on a node declaring 1 slot are cut
    (each held to the whole floor; before: 1/4 of it, never cut); on one declaring 4 slots
    they are not. A node declaring 1,000 slots and trickling 32 streams at 1/32 of the floor
    each is cut (held to 1/8 of it; before: never)."""
    floor = StreamFloor(min_rate=1.0, grace_s=2.0)
    assert _cut_at(floor, SharedTime(), "n", 1 / 1.6, streams=4, slots=1) is not None
    assert _cut_at(floor, SharedTime(), "n", 1 / 1.6, streams=4, slots=4) is None
    assert _cut_at(floor, SharedTime(), "n", 1 / 1.0, streams=32, slots=1000,
                   events=100) is not None  # fmt: skip


@pytest.mark.parametrize("index", [1, -1, 2**70, "0", 0.0, True, None])
def test_a_chunk_of_a_choice_not_asked_for_carries_no_output(index: object) -> None:
    """Found 2026-12-05 (``choiceidx31``): a chunk whose only choice had ``index`` 1, to a
    request of ``n`` 1, counted as output: it held the floor (the gateway's, the client's)
    while the client's choice 0 got nothing."""
    for choice in ({"delta": {"content": "x"}}, {"text": "x"}):
        assert not carries_output({"choices": [{"index": index, **choice}]}, 1)
    assert carries_output({"choices": [{"index": 1, "delta": {"content": "x"}}]}, 2)
    twice = [{"index": 0, "delta": {"content": "x"}}] * 2
    assert not carries_output({"choices": twice}, 2)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(0, 1),
    st.text(max_size=4),
    st.just([{"type": "text", "text": "pt"}]),
)
_BODY = st.dictionaries(
    st.sampled_from(["role", "content", "reasoning_content", "reasoning", "refusal",
                     "x_pad", "tool_calls"]),
    _VALUES | st.just([{"function": {"name": "f", "arguments": "{}"}}]),
    max_size=4,
)  # fmt: skip
_CHOICE = st.one_of(
    st.fixed_dictionaries({}, optional={"index": _VALUES, "delta": _BODY | _VALUES,
                                        "text": _VALUES, "finish_reason": _VALUES}),
    _VALUES,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(choices=st.one_of(st.lists(_CHOICE, max_size=3), _VALUES), n=st.integers(1, 3))
def test_one_look_at_a_chunk_is_each_rule_applied_once(choices: object, n: int) -> None:
    """``chunk_reading`` (the gateway's one look a chunk, stream32) says what the rules it
    folds say, one by one: a fold that drifted from them (a fault missed, text or bytes
    counted otherwise) changes what the floor, the limit and the receipt read."""
    obj = {**_HEAD, "choices": choices}
    why, text, nbytes = chunk_reading(obj, n)
    assert why == choice_fault(obj, n)
    if why is None:
        assert (text, nbytes) == (chunk_text(obj), chunk_bytes((obj,), n))
    else:
        assert (text, nbytes) == ("", 0)
    assert (why is None and (bool(text) or nbytes > 0)) is carries_output(obj, n)


def test_a_declared_context_of_1_is_a_context() -> None:
    assert node_context(1, 4096) == 1
    assert node_context(2, 4096) == 2
    assert node_context(0, 4096) == 4096


def test_a_part_at_exactly_its_limit_of_tokens_padded_with_events_is_padded() -> None:
    """``limit`` tokens in too many events, fewer than ``limit`` of them with output: the
    tokens are not past the limit (a cut there is ``OVER``), the events pad it."""
    events = 4 + SLACK_EVENTS + 1
    assert overrun(4, 4, 3, events) == PADDED
    assert overrun(4, 5, 3, events) == OVER  # past the limit in tokens
    assert overrun(4, 4, 4, events) == OVER  # as many events with output as the limit


def test_a_chunk_of_another_choice_carries_no_output_for_a_request_of_one() -> None:
    """The default is a request of one choice: ``index`` 1 is not one asked for."""
    assert not carries_output({"choices": [{"index": 1, "delta": {"content": "x"}}]})
    assert carries_output({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    assert carries_output({"choices": [{"index": 1, "delta": {"content": "x"}}]}, 2)
    # a completion's text, or its echo, is output too
    assert carries_output({"choices": [{"index": 0, "text": "x"}]})


def test_events_without_data_are_a_flood_past_64_and_2_per_output() -> None:
    from LLM_Mesh.core.stream_guard import too_many_without_data

    assert not too_many_without_data(64, 0) and too_many_without_data(65, 0)
    assert not too_many_without_data(68, 2) and too_many_without_data(69, 2)
    assert not too_many_without_data(264, 100) and too_many_without_data(265, 100)


def test_the_time_lost_waiting_adds_up_over_each_change_of_sharers() -> None:
    """``lost(streaming=False)``: each stretch at its own rate (``1 - 1/k``), late on the
    clock too; nothing at the instant of a begin."""
    st = SharedTime()
    st.begin("n", 100.0)
    st.begin("n", 100.0)  # 2 sharers
    assert st.lost("n", 100.0, streaming=False) == 0.0 and st.lost("n", 100.0) == 0.0
    st.begin("n", 110.0)  # 10 s at 1/2 lost, then 3 sharers
    st.end("n", 120.0)  # 10 s at 2/3 lost
    assert st.lost("n", 120.0, streaming=False) == pytest.approx(5.0 + 20.0 / 3)
    assert st.lost("n", 120.0) == pytest.approx(5.0 + 20.0 / 3)
    st.end("n", 120.0)
    st.end("n", 130.0)  # the last one: the node is forgotten
    assert st.nodes() == [] and st.in_flight("n") == 0


def test_other_replicas_said_to_be_0_share_nothing() -> None:
    st = SharedTime()
    st.begin("n", 0.0, others=0)
    assert st.lost("n", 10.0) == 0.0  # alone: nothing lost
    st.set_others("n", 1, 10.0)
    assert st.lost("n", 20.0) == pytest.approx(5.0)
    st.set_others("n", 0, 20.0)  # back to alone
    assert st.lost("n", 30.0) == pytest.approx(5.0)


def test_one_look_counts_every_choice_asked_for_and_one_by_default() -> None:
    """A second choice's bytes (``n`` 2) are its part's too; without ``n`` one choice is
    asked for, so a chunk of choice 1 is a fault (mut34: both lived the random examples)."""
    second = {**_HEAD, "choices": [{"index": 1, "delta": {"content": "ab"}}]}
    assert chunk_reading(second, 2) == (None, chunk_text(second), 2)
    assert chunk_reading(second) == (choice_fault(second, 1), "", 0)
    assert choice_fault(second, 1) is not None
