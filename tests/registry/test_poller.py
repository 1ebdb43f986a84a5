"""The background store poll: a poll is skipped while the store's change check has not moved."""

from __future__ import annotations

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
