"""``core/client_floor``: a client's bound on a stream's events without output, derived
from the gateway's own rules (``core/stream_guard``, ``core/failover.MAX_ATTEMPTS_TOP``)."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.config import MAX_ATTEMPTS_TOP as CONFIG_TOP
from LLM_Mesh.core.client_floor import (
    MARGIN,
    QuietBound,
    QuietCount,
    honest_most,
    quiet_bound,
    stream_limit,
)
from LLM_Mesh.core.failover import MAX_ATTEMPTS_TOP
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES
from LLM_Mesh.core.stream_guard import MAX_CONTEXT

TOKEN: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "a"}}]}
TOOL: dict[str, Any] = {
    "choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "{"}}]}}]
}
EMPTY: dict[str, Any] = {"choices": [{"index": 0, "delta": {}}]}


def test_the_gateways_top_of_attempts_is_the_one_the_bound_counts() -> None:
    assert CONFIG_TOP is MAX_ATTEMPTS_TOP == 16


def test_the_documented_numbers_for_asks_default() -> None:
    """``ask``'s ``max_tokens`` 128: 16 parts of 136 data events and 64 + 2 a data event
    keep-alives; twice that (core/client_floor's docstring, docs/security.md)."""
    honest = honest_most(128)
    assert honest == QuietBound(
        run=(2 * 136 + 64) + 15 * (136 + 64) + 2,
        events=16 * (2 * 136 + 64) + 2,
        bytes=(16 * 136 + 2) * MAX_EVENT_BYTES + 16 * (64 + 2 * 136),
    )
    assert quiet_bound({"max_tokens": 128}, chat=False) == QuietBound(
        6_676, 10_756, honest.bytes * 2
    )
    assert honest.bytes * MARGIN // (1 << 20) == 4_356  # MiB


@pytest.mark.parametrize(
    ("body", "chat", "limit"),
    [
        ({"max_tokens": 128}, False, 128),
        ({"max_tokens": 128, "echo": True}, False, 129),
        ({"max_tokens": 128, "n": 3}, False, 384),
        ({"max_tokens": 64, "max_completion_tokens": 100}, True, 100),  # the gateway's order
        ({"max_tokens": 64, "max_completion_tokens": 100}, False, 64),  # (not a completion's)
        ({"max_tokens": "64"}, True, 64),  # the request model reads it so
        ({"max_tokens": 64.0, "n": "2"}, True, 128),
        ({}, True, MAX_CONTEXT),  # without max_tokens: the largest context a node declares
        ({"max_tokens": 0}, True, MAX_CONTEXT),
        ({"max_tokens": -5}, True, MAX_CONTEXT),
        ({"max_tokens": True}, True, MAX_CONTEXT),
        ({"max_tokens": 1.5}, True, MAX_CONTEXT),
        ({"max_tokens": "lots"}, True, MAX_CONTEXT),
        ({"max_tokens": float("inf")}, True, MAX_CONTEXT),
        ({"max_tokens": 8, "n": None}, True, 8),
        ({"max_tokens": 8, "echo": "yes"}, False, 9),  # any echo that is not off: larger
    ],
)
def test_the_stream_limit_is_read_as_the_gateway_reads_it_or_larger(
    body: dict[str, Any], chat: bool, limit: int
) -> None:
    assert stream_limit(body, chat) == limit


def test_more_parts_or_tokens_never_make_the_bound_smaller() -> None:
    for limit in (1, 8, 128, 4096):
        a, b = honest_most(limit, parts=3), honest_most(limit)
        c = honest_most(limit + 1)
        for x, y in ((a, b), (b, c)):
            assert x.run < y.run and x.events < y.events and x.bytes < y.bytes


def test_output_resets_the_run_never_the_total() -> None:
    count = QuietCount(QuietBound(run=3, events=5, bytes=10**6))
    for _ in range(3):
        assert count.event([EMPTY], 10) is None
    assert count.event([TOKEN], 10) is None and count.run == 0
    assert count.event([], 1) is None  # a comment
    assert count.event([TOOL], 50) is None  # a tool call's arguments are output
    assert count.event([EMPTY], 10) is None and count.events == 5
    assert count.event([EMPTY], 10) == "in all"


def test_a_run_past_its_bound_is_named() -> None:
    count = QuietCount(QuietBound(run=2, events=9, bytes=10**6))
    assert count.event([{"choices": []}], 10) is None
    assert count.event([{"choices": [], "usage": {}}], 10) is None
    assert count.event([{"choices": [{"delta": {"role": "assistant"}}]}], 10) == "in a row"


def test_bytes_past_their_bound_are_named() -> None:
    count = QuietCount(QuietBound(run=99, events=99, bytes=100))
    assert count.event([EMPTY], 100) is None
    assert count.event([], 1) == "bytes"


def test_output_of_a_later_choice_counts_only_with_n() -> None:
    """The gateway's own test (``carries_output`` with the request's ``n``)."""
    later: dict[str, Any] = {
        "choices": [{"index": 0, "delta": {}}, {"index": 1, "delta": {"content": "b"}}]
    }
    two = QuietCount(QuietBound(1, 1, 10**6), choices=2)
    assert two.event([later], 10) is None and two.run == 0
    one = QuietCount(QuietBound(1, 1, 10**6), choices=1)
    assert one.event([later], 10) is None and one.run == 1


def test_without_n_a_later_choice_is_no_output() -> None:
    """A count made without ``choices`` is for one choice (``n`` 1): a later choice's text is
    no progress (the gateway relays only the choices asked for)."""
    later: dict[str, Any] = {
        "choices": [{"index": 0, "delta": {}}, {"index": 1, "delta": {"content": "b"}}]
    }
    count = QuietCount(QuietBound(5, 5, 10**6))
    assert count.event([later], 10) is None and count.run == 1


@pytest.mark.parametrize(
    ("body", "chat", "limit"),
    [
        ({"max_tokens": 1}, False, 1),  # the smallest limit is a limit
        ({"max_tokens": "1"}, True, 1),
        ({"max_tokens": 1.0}, True, 1),
        # a limit the gateway refuses is skipped for the next key, not read as "none"
        ({"max_completion_tokens": 0, "max_tokens": 7}, True, 7),
        ({"max_completion_tokens": -3, "max_tokens": 7}, True, 7),
        ({"max_completion_tokens": [5], "max_tokens": 7}, True, 7),
        ({"max_tokens": 0}, False, MAX_CONTEXT),
        # an n the gateway refuses counts as one choice
        ({"max_tokens": 8, "n": 0}, True, 8),
        ({"max_tokens": 8, "n": -2}, True, 8),
        ({"max_tokens": 8, "n": 1}, True, 8),
        ({"max_tokens": 8, "n": 2}, True, 16),
    ],
)
def test_the_smallest_whole_numbers_and_refused_ones(
    body: dict[str, Any], chat: bool, limit: int
) -> None:
    assert stream_limit(body, chat) == limit


def test_a_chats_completion_limit_bounds_its_quiet_events() -> None:
    """``quiet_bound`` reads ``max_completion_tokens`` of a chat (and only of a chat)."""
    body = {"max_completion_tokens": 8}
    assert quiet_bound(body, chat=True) == honest_most(8).times(MARGIN)
    assert quiet_bound(body, chat=False) == honest_most(MAX_CONTEXT).times(MARGIN)


def test_a_chunk_of_a_choice_not_asked_for_is_no_output() -> None:
    """Found 2026-12-05 (``choiceidx31``): ``index`` 1 text to a request of ``n`` 1 reset
    the client's run (``stream_guard.carries_output``, the gateway's own test)."""
    other = {"choices": [{"index": 1, "delta": {"content": "x"}}]}
    count = QuietCount(QuietBound(run=2, events=9, bytes=10**6))
    assert count.event([other], 10) is None and count.event([other], 10) is None
    assert count.event([other], 10) == "in a row"
    assert QuietCount(QuietBound(run=1, events=9, bytes=10**6), 2).event([other], 10) is None
