"""The lease book's arithmetic (``core/lease_book.py``): pure, no database."""

from __future__ import annotations

import re

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


def test_a_lease_of_one_estimate_is_allowed_none_is_refused_in_words() -> None:
    assert LeaseBook(1, idle_s=1.0).estimates == 1
    with pytest.raises(ValueError) as refused:
        LeaseBook(0, idle_s=1.0)
    assert str(refused.value) == "a lease is at least one estimate"


def test_an_estimate_of_nothing_is_never_admitted_from_memory_one_unit_is() -> None:
    book = LeaseBook(2, idle_s=1.0)
    lease, grow, _ = book.plan("p", 10)
    book.took(lease, "r1", 10, grow, 0.0)
    assert not book.admit("r0", "p", 0, 0.0) and not book.admit("r-", "p", -1, 0.0)
    assert book.admit("r2", "p", 1, 0.0) and book.from_memory == 1


def test_a_payers_requests_plan_on_its_one_current_lease() -> None:
    book = LeaseBook(4, idle_s=1.0)
    lease, grow, _ = book.plan("p", 100)
    assert re.fullmatch(r"l-[0-9a-f]{12}-[0-9]+", lease.lease_id)
    book.took(lease, "r1", 100, grow, 0.0)  # amount 400, 300 free
    again, grow, margin = book.plan("p", 350)  # more than is free: grow by what 4 lack
    assert again is lease and lease.ops == 1
    assert (grow, margin) == (4 * 350 - 300, 4 * 350)
    assert book.plan("p", 350)[0] is lease and lease.ops == 2  # two takes in flight
    book.took(lease, "r2", 350, grow, 0.0)
    assert lease.amount == 400 + grow and lease.ops == 1
    other, _, _ = book.plan("q", 100)
    assert other is not lease and other.lease_id != lease.lease_id
    assert book.leases == {lease.lease_id: lease, other.lease_id: other}


def test_the_counters_count_takes_that_grew_and_leases_given_back() -> None:
    book = LeaseBook(2, idle_s=1.0)
    assert (book.taken, book.given, book.from_memory) == (0, 0, 0)
    for n, payer in enumerate(("p", "q")):
        lease, grow, _ = book.plan(payer, 10)
        book.took(lease, f"r{n}", 10, grow, 0.0)
        book.void(f"r{n}", 0.0)
    lease, _, _ = book.plan("s", 10)
    book.took(lease, "rs", 10, None, 0.0)  # refused: no growth
    assert book.taken == 2
    book.lose(book.current["p"])
    assert len(book.idle(0.5)) == 1 and book.given == 1
    assert len(book.idle(1.0)) == 1 and book.given == 2


def test_a_lease_was_last_used_when_it_last_admitted_grew_or_finished() -> None:
    book = LeaseBook(4, idle_s=1.0)
    lease, grow, _ = book.plan("p", 10)
    book.took(lease, "r1", 10, grow, 1.0)
    assert lease.used == 1.0
    assert book.admit("r2", "p", 10, 2.0) and lease.used == 2.0
    book.spend("r1")
    book.spent("r1", 5, True, 3.0)
    assert lease.used == 3.0
    book.void("r2", 4.0)
    assert book.idle(4.9) == [] and book.idle(5.0) == [lease]


def test_an_answer_and_a_take_in_flight_are_both_counted() -> None:
    book = LeaseBook(2, idle_s=1.0)
    lease, grow, _ = book.plan("p", 10)
    book.took(lease, "r1", 10, grow, 0.0)
    book.plan("p", 30)  # a take in flight
    assert book.spend("r1") is lease and lease.ops == 2
    book.spent("unknown", 5, True, 0.0)  # not admitted from a lease: nothing
    assert lease.ops == 2 and lease.amount == 20
