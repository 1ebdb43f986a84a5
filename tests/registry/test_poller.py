"""The background store poll: a poll is skipped while the store's change check has not moved."""

from __future__ import annotations

import logging

import pytest

from LLM_Mesh.registry.poller import Poller


class Counting(Poller):
    """Counts its polls; ``version`` is what the change check returns."""

    def __init__(self, version: int | None = 1, *, fail: bool = False) -> None:
        self.version = version
        self.fail = fail
        self.polls = 0
        self.changes = lambda: self.version
        self.during_poll: int | None = None  # a commit made while the poll runs

    async def poll(self) -> None:
        self.polls += 1
        if self.during_poll is not None:
            self.version = self.during_poll
        if self.fail:
            raise RuntimeError("store hiccup")


async def test_a_poll_runs_only_when_the_store_changed() -> None:
    p = Counting(version=7)
    assert await p.tick() is True  # the first tick always polls
    assert await p.tick() is False and await p.tick() is False  # nothing written since
    p.version = 8  # someone committed
    assert await p.tick() is True and p.polls == 2
    assert await p.tick() is False


async def test_a_commit_made_while_the_poll_ran_is_polled_for_next_tick() -> None:
    p = Counting(version=1)
    p.during_poll = 2  # the poll's queries may have read the store before this commit
    assert await p.tick() is True
    p.during_poll = None
    assert await p.tick() is True and p.polls == 2  # version 1 was read before the poll
    assert await p.tick() is False


async def test_a_failed_poll_is_tried_again_though_nothing_changed() -> None:
    p = Counting(version=3, fail=True)
    assert await p.tick() is True
    p.fail = False
    assert await p.tick() is True and p.polls == 2
    assert await p.tick() is False


async def test_a_store_that_cannot_tell_is_polled_every_tick() -> None:
    p = Counting(version=None)
    assert [await p.tick() for _ in range(3)] == [True, True, True]

    def broken() -> int | None:
        raise OSError("database file gone")

    p.changes = broken
    assert await p.tick() is True
    q = Counting()
    q.changes = None  # no check at all (memory store, PostgreSQL)
    assert [await q.tick() for _ in range(2)] == [True, True]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_run_of_failures_is_logged_once_then_an_error_past_60_s_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store gone away: each poll every second logged its whole traceback (about 400 lines
    a second from one replica, found 2026-12-04); now the first failure in full, the rest at
    DEBUG, and the run as every loop's (``failed_rounds.RoundLog``, alarm42): one ERROR 60 s
    into it, one INFO at its end (before: an ERROR a minute, a WARNING at its end)."""
    p = Counting(version=None, fail=True)
    clock = Clock()
    p.streak_clock = clock
    caplog.set_level(logging.INFO, logger="LLM_Mesh.registry.poller")
    for _ in range(150):  # 150 s of a poll a second
        await p.tick()
        clock.now += 1.0
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    assert lines[0].exc_info is not None and lines[0].levelno == logging.ERROR
    assert lines[0].getMessage() == "llm-mesh-poller: poll failed; polled again next tick"
    assert lines[1].exc_info is None and lines[1].getMessage().startswith(
        "llm-mesh-poller: still failing after 60 s, 61 failed rounds in a row (since "
    )
    assert "(RuntimeError: store hiccup)" in lines[1].getMessage()
    assert p.silent_s() == 150.0  # no success since its first tick
    caplog.clear()
    p.fail = False
    await p.tick()
    assert [(r.levelno, r.getMessage().split(" (since")[0]) for r in caplog.records] == [
        (logging.INFO, "llm-mesh-poller: recovered after 150 failed rounds over 150 s")
    ]
    assert p.silent_s() == 0.0


class Away(Counting):
    async def poll(self) -> None:
        raise ConnectionRefusedError(111, "Connection refused")


async def test_a_lost_store_is_one_warning_a_run_not_a_traceback_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = Away(version=None)
    clock = Clock()
    p.streak_clock = clock
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.poller")
    for _ in range(30):
        await p.tick()
        clock.now += 1.0
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING] + [logging.DEBUG] * 29
    assert all(r.exc_info is None for r in caplog.records)
    assert "the database's connection lost or refused" in caplog.records[0].getMessage()
