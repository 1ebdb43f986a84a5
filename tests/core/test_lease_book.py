"""The lease book's arithmetic (``core/lease_book.py``): pure, no database."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.lease_book import LeaseBook


def test_a_take_leaves_the_lease_estimates_free_this_request_one_of_them() -> None:
    book = LeaseBook(4, idle_s=1.0)
    assert not book.admit("r1", "p", 100, 0.0)  # no lease yet
    lease, grow, margin = book.plan("p", 100)
    assert (grow, margin, lease.ops) == (400, 400, 1)
    book.took(lease, "r1", 100, 400, 0.0)
    assert (lease.amount, lease.held, lease.free, lease.ops) == (400, 100, 300, 0)
    assert all(book.admit(f"r{n}", "p", 100, 0.1) for n in (2, 3, 4))
    assert not book.admit("r5", "p", 100, 0.1) and book.from_memory == 3
    _, grow, _ = book.plan("p", 150)  # a bigger one: grows by what 4 of it lack
    assert grow == 600


def test_a_void_gives_back_and_an_answer_moves_its_total_out() -> None:
    book = LeaseBook(2, idle_s=1.0)
    lease, grow, _ = book.plan("p", 100)
    book.took(lease, "r1", 100, grow, 0.0)
    assert book.admit("r2", "p", 100, 0.0)
    assert book.void("r2", 0.5) and not book.void("r2", 0.5)  # once
    assert book.spend("r1") is lease and lease.ops == 1
    book.spent("r1", 30, True, 0.6)
    assert (lease.amount, lease.held, lease.ops) == (170, 0, 0)


def test_an_answer_from_the_balance_loses_the_lease_and_it_goes_back() -> None:
    book = LeaseBook(2, idle_s=1.0)
    lease, grow, _ = book.plan("p", 100)
    book.took(lease, "r1", 100, grow, 0.0)
    assert book.admit("r2", "p", 100, 0.0)
    assert book.spend("r1") is lease
    book.spent("r1", 100, False, 0.1)  # the lease was gone: no more requests on it
    assert lease.lost and "p" not in book.current and not book.admit("r3", "p", 1, 0.2)
    assert book.idle(0.2) == []  # r2 still holds it
    book.void("r2", 0.3)
    assert book.idle(0.3) == [lease] and not book.leases and book.given == 1


def test_an_idle_lease_goes_back_one_never_grown_just_leaves() -> None:
    book = LeaseBook(2, idle_s=1.0)
    lease, grow, _ = book.plan("p", 100)
    assert book.idle(99.0) == []  # its take is in flight
    book.took(lease, "r1", 100, None, 0.0)  # refused: reserved alone
    assert book.idle(99.0) == [] and not book.leases  # no row: nothing to hand back
    lease, grow, _ = book.plan("p", 100)
    book.took(lease, "r2", 100, grow, 5.0)
    book.void("r2", 5.0)
    assert book.idle(5.9) == [] and book.idle(6.0) == [lease]


def test_a_lease_is_at_least_one_estimate() -> None:
    with pytest.raises(ValueError):
        LeaseBook(0, idle_s=1.0)
