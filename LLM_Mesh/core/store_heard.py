"""A heartbeat's age on the store's own clock (``registry/node_sync.py``, migration 0033).

A heartbeat row is stamped twice: ``nodes.last_heartbeat_at`` by the wall clock of the
replica that got the heartbeat, and ``nodes.heard_store_at`` by the store's clock
(PostgreSQL's ``clock_timestamp()`` in the heartbeat's ``UPDATE``; SQLite and the memory
store: the process's clock, one host), with ``nodes.heard_store_of`` the
``last_heartbeat_at`` that stamp goes with. A replica reading the row reads the store's
clock in the same statement (``store_now``), so the row's age is measured on one clock,
whatever any replica's wall clock does (stepped back or forward, running ahead or behind,
stepped before the replica started); it is heard at this table's clock less that age.

A stamp is told only while ``heard_store_of`` equals ``last_heartbeat_at``
(:func:`store_stamp`): a replica of an older version (a rolling upgrade) writes the
heartbeat's time and leaves the store's stamp as it was, and a row written before 0033 has
none; such rows are read as before (``core/beat_stamp.py``, the fallback).

Pure functions of plain values; the store reads, :class:`NodeSync` applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "AHEAD_S",
    "HeardRow",
    "HeardRows",
    "heard_within",
    "keyed_heard",
    "quiet_s",
    "store_age",
    "store_stamp",
]

#: how far a stamp may read ahead of the store's clock read with it and still be told (as
#: age 0): SQLite's and the memory store's clock is read as the statement is made, a write
#: may come between; further ahead, the store's clock stepped back since (:func:`store_age`)
AHEAD_S = 1.0


@dataclass(frozen=True)
class HeardRow:
    """One node's heartbeat as the store holds it: ``at`` the writer's wall-clock stamp,
    ``keyed_at`` its last keyed request as it said (None: not said), ``store_at`` the
    store's own stamp and ``age_s`` its age on the store's clock when read (both None:
    the row does not tell, :func:`store_stamp`)."""

    node_id: str
    state: str
    at: datetime
    keyed_at: datetime | None = None
    store_at: datetime | None = None
    age_s: float | None = None


@dataclass(frozen=True)
class HeardRows:
    """The rows of one read and the store's clock in the same statement (None: not read)."""

    rows: list[HeardRow]
    store_now: datetime | None


def store_stamp(
    store_at: datetime | None, store_of: datetime | None, last_heartbeat_at: datetime | None
) -> datetime | None:
    """The store's stamp of the row's last heartbeat: ``store_at`` while it was written
    with that heartbeat (``store_of`` equals ``last_heartbeat_at``), else None (written
    before 0033, or the heartbeat since written by a replica of an older version)."""
    if store_at is None or last_heartbeat_at is None or store_of != last_heartbeat_at:
        return None
    return store_at


def store_age(
    store_now: datetime | None, stamp: datetime | None, *, ahead_s: float = AHEAD_S
) -> float | None:
    """Seconds from ``stamp`` to ``store_now``, both the store's clock; never below 0 (a
    row read in the statement that reads the clock was written before it); None when
    either is missing, the difference is not finite, or the stamp reads more than
    ``ahead_s`` ahead of ``store_now``: the store's clock stepped back since it was written
    (NTP, a VM resumed, a failover to a server whose clock is behind), and its age cannot
    be told; read as 0, heard now, a node that died within the step was routed again at
    every poll until the store's clock caught up, and at every replica's start (found
    2026-12-07, review42b). Such a row is read by its writer's wall-clock stamp, as before
    migration 0033 (``core/beat_stamp.py``)."""
    if store_now is None or stamp is None:
        return None
    age = (store_now - stamp).total_seconds()
    if not math.isfinite(age) or age < -ahead_s:
        return None
    return max(0.0, age)


def keyed_heard(heard: float, at: datetime, keyed_at: datetime) -> float:
    """When on the table's clock the node's last keyed request came: ``heard`` (the
    heartbeat's time there) less how long before the heartbeat the writer stamped it
    (both stamps by the writer's one clock); never after ``heard``."""
    return heard - max(0.0, (at - keyed_at).total_seconds())


def quiet_s(age_s: float | None, wall_now: datetime, heard: datetime) -> float:
    """How long a stored node has been quiet, to judge whether it is forgotten
    (``snapshot.load_nodes``): ``age_s``, its last heartbeat's age on the store's clock,
    where the row tells it (:func:`store_age` of a valid :func:`store_stamp`), whatever
    this replica's wall clock says; else (no valid stamp: written before 0033, or by a
    replica of an older version) ``heard``, its wall-clock stamp (or, never heard, when it
    registered), aged on the wall clock ``wall_now`` (found 2026-12-07, forget42: a replica
    started with its clock an hour ahead forgot nodes an hour early, one behind kept them
    an hour late)."""
    return age_s if age_s is not None else (wall_now - heard).total_seconds()


def heard_within(
    stamp: datetime | None,
    store_now: datetime,
    at: datetime | None,
    since: datetime,
    window_s: float | None,
) -> bool:
    """Whether a row was heard within the last ``window_s`` (another node's row holding
    its address, ``Store.upsert_node``): by its valid store stamp (:func:`store_stamp`)
    on the store's clock ``store_now``, whatever the asking replica's wall clock says;
    a row without one (or ``window_s`` None: not told), by its wall stamp ``at`` against
    ``since``, the asking replica's wall clock less the window (found 2026-12-07,
    forget42: at a replica an hour ahead a live node's row read as quiet and a second key
    took its address; at one an hour behind a node gone an hour still held it). A stamp
    more than :data:`AHEAD_S` ahead of ``store_now`` (the store's clock stepped back
    since) is not told either, as :func:`store_age`."""
    told = stamp is not None and stamp - store_now <= timedelta(seconds=AHEAD_S)
    if stamp is not None and told and window_s is not None:
        return stamp >= store_now - timedelta(seconds=window_s)
    return at is not None and at >= since
