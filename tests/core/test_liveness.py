"""Heartbeat age and routability (core/liveness.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.liveness import (
    FORGET_FLOOR_S,
    address_lock_key,
    address_text,
    forgettable,
    heartbeat_age,
    holds_address,
    is_routable,
    node_address,
)


def test_heartbeat_age() -> None:
    assert heartbeat_age(None, 10.0) is None
    assert heartbeat_age(4.0, 10.0) == 6.0
    assert heartbeat_age(12.0, 10.0) == 0.0  # a heartbeat "from the future" is fresh, not negative


def routable(**kw: object) -> bool:
    args: dict[str, object] = dict(
        online=True, last_heartbeat=0.0, now=5.0, expiry_s=10.0, check_failed=False
    )
    args.update(kw)
    return is_routable(**args)  # type: ignore[arg-type]


def test_online_and_fresh_is_routable() -> None:
    assert routable()


@pytest.mark.parametrize(
    "kw",
    [
        {"online": False},
        {"check_failed": True},
        {"last_heartbeat": None},
        {"now": 10.0},  # exactly expiry_s old: expired
        {"now": 30.0},
    ],
)
def test_not_routable(kw: dict[str, object]) -> None:
    assert not routable(**kw)


def test_just_before_expiry_is_routable() -> None:
    assert routable(now=9.999)


def test_expiry_counts_from_the_last_heartbeat() -> None:
    assert routable(last_heartbeat=100.0, now=105.0)
    assert not routable(last_heartbeat=100.0, now=110.0)


def test_a_node_holds_its_address_while_live_in_any_state_but_gone() -> None:
    def holds(
        *, gone: bool = False, last: float | None = 100.0, now: float = 110.0, failed: bool = False
    ) -> bool:
        return holds_address(
            gone=gone, last_heartbeat=last, now=now, expiry_s=30.0, check_failed=failed
        )

    assert holds()  # paused or draining: still the node at that address
    assert not holds(gone=True)  # offline, revoked
    assert not holds(now=131.0)  # expired
    assert not holds(failed=True)  # a key that cannot answer for itself there
    assert not holds(last=None)


def test_node_address_and_its_lock_key() -> None:
    """One address however the URL writes it; its lock key a signed 64-bit number, the
    same at every replica (a PostgreSQL advisory lock's key)."""
    a = node_address("https://N1.example:8801/v1")
    assert a == node_address("http://n1.example:8801") == ("n1.example", 8801)
    assert node_address("https://n1.example") == ("n1.example", 443)
    assert node_address("ftp://n1.example") is None
    assert a is not None
    key = address_lock_key(a)
    assert -(2**63) <= key < 2**63
    assert key == address_lock_key(("n1.example", 8801)) != address_lock_key(("n1.example", 8802))


def test_a_node_is_forgotten_after_the_bound_never_within_the_floor() -> None:
    """``node_forget_s`` after it was last heard (24 h by default); a bound set lower than
    the heartbeat expiry + ``FORGET_FLOOR_S`` is raised to it (a store poll's overlap)."""
    assert not forgettable(0.0, 86399.0, 86400.0, 30.0)
    assert forgettable(0.0, 86400.0, 86400.0, 30.0)
    assert not forgettable(0.0, 60.0, 1.0, 30.0)
    assert forgettable(0.0, 30.0 + FORGET_FLOOR_S, 1.0, 30.0)


def test_an_address_is_stored_as_host_colon_port() -> None:
    """(mut33, 2026-12-06: ``{port}:{port}`` passed.)"""
    assert address_text(("10.0.0.7", 8080)) == "10.0.0.7:8080"
    assert address_text(("::1", 443)) == "::1:443"
