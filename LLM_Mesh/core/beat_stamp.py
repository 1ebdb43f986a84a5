"""How a heartbeat row's wall-clock stamp read from the store is taken
(``registry/node_sync.py``) where the row has no stamp of the store's own clock (written
before migration 0033, or by a replica of the previous version during a rolling upgrade):
rows the store stamped are aged on its clock alone (``core/store_heard.py``), and none of
what follows applies to them.

A replica reads the heartbeats other replicas wrote, each stamped with the writer's wall
clock, and puts each on its own table's clock by its age on its own wall clock. That age is
only as good as the two clocks' agreement. After this replica's wall clock stepped back
(NTP, a VM resumed), rows written before the step carry stamps in its "future": their age
on its clock is below zero, and was read as 0, heard now. A row read before is not read
again (sync39), but one never read before (a node loaded at start, or one first seen
after the step) was read once as heard now: a node that died was routed for one expiry
period (found 2026-12-07, start40).

:func:`beat_reading` says how to take a stamp:

- ``SEEN``: not newer than the stamp already read for the node: nothing new.
- ``WALL``: at most ``skew_s`` ahead of the reading clock (replicas' clocks a little apart,
  a commit late): its age on that clock. For a row read before, this wall clock, as
  before; for one never read, the latest of the clocks this replica can tell
  (:func:`first_read_clock`), where one is more than ``skew_s`` ahead of this wall clock:
  this wall clock as it would read had it not stepped back (:func:`stepped_back`, against
  the monotonic clock, which never steps), and the store's own clock (PostgreSQL's,
  measured by one round trip). Of two clocks apart, the later gives the older reading:
  never heard later than either says (found 2026-12-07, sync41: a row stamped within
  ``skew_s`` ahead of a wall clock just stepped back an hour was read as heard now though
  written an hour before; and a replica whose clock runs behind the others' took every
  node's first row as ``UNKNOWN``, counting it from its second row only).
- ``SINCE``: further ahead, but newer than the stamp read for the node before: a heartbeat
  written since that read, so heard about now (sync39's reading).
- ``ANCHORED``: further ahead and never read, with an :class:`Anchor` (a stamp whose
  reading was sure, ``WALL`` or ``SINCE``, and when on the table's clock it was heard):
  aged from it by the stamps' difference (:func:`anchored_heard`), both stamps written by
  replicas' clocks, neither by this one's; never later than now. A node that died an hour
  before reads an hour old, whatever this clock says.
- ``UNKNOWN``: further ahead, never read, no anchor: its age cannot be told, so it is not
  taken as heard (fail closed: the node waits, out of routing, for its next heartbeat,
  which is ``SINCE``).

A reading older than the truth only fails to move a node's heard time forward (it never
moves back): a store's clock ahead of every replica's costs a node first seen its first
row, not its routing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "SKEW_S",
    "Anchor",
    "BeatReading",
    "anchored_heard",
    "beat_reading",
    "first_read_clock",
    "newer_anchor",
    "stepped_back",
]

#: how far ahead of this replica's wall clock a stamp is still read by its wall-clock age
SKEW_S = 5.0


class BeatReading(Enum):
    SEEN = "seen"
    WALL = "wall"
    SINCE = "since"
    ANCHORED = "anchored"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Anchor:
    """A stamp whose reading was sure, and when on the table's clock it was heard."""

    stamp: float
    heard: float


def stepped_back(
    last: float | None,
    wall_now: float,
    mono_now: float,
    behind_s: float = 0.0,
    *,
    step_s: float = SKEW_S,
) -> tuple[float, float]:
    """``(offset, behind_s)``: this wall clock's offset from the monotonic clock now
    (``wall_now - mono_now``; ``last``: the one seen before, ``None``: none), and how far
    it reads behind where it would without the steps back it took since (``behind_s``:
    the figure before): a fall of the offset by more than ``step_s`` between two looks is
    a step back, added; a rise by more, a step forward, takes back as much (a clock put
    right again). The monotonic clock never steps, and NTP's slewing moves both alike;
    a drift of the offset by less than ``step_s`` a look is not a step (found 2026-12-07,
    review41: counted from the highest offset ever seen, a test's frozen wall clock beside
    the real monotonic one read as a step back growing with the test's run time)."""
    offset = wall_now - mono_now
    if last is not None:
        moved = offset - last
        if moved < -step_s:
            behind_s += -moved
        elif moved > step_s:
            behind_s = max(0.0, behind_s - moved)
    return offset, behind_s


def first_read_clock(
    wall_now: float,
    *,
    behind_s: float = 0.0,
    store_now: float | None = None,
    skew_s: float = SKEW_S,
) -> float:
    """The clock a row never read before is aged on: the latest of this wall clock,
    this wall clock as it would read had it not stepped back (``behind_s``:
    :func:`stepped_back`) and the store's clock (``store_now``; ``None``: not told), where
    that latest is more than ``skew_s`` ahead of this wall clock; else this wall clock,
    as before (clocks a little apart)."""
    latest = wall_now + max(0.0, behind_s)
    if store_now is not None and store_now > latest:
        latest = store_now
    return latest if latest - wall_now > skew_s else wall_now


def beat_reading(
    stamp: float,
    wall_now: float,
    read_before: float | None,
    *,
    skew_s: float = SKEW_S,
    anchored: bool,
    first_now: float | None = None,
) -> BeatReading:
    """How to take a heartbeat stamped ``stamp`` (module docstring): ``wall_now`` this
    replica's wall clock, ``read_before`` the newest stamp read for the node (``None``:
    none), ``anchored`` whether an :class:`Anchor` is known, ``first_now`` the clock a row
    never read is aged on (:func:`first_read_clock`; ``None``: ``wall_now``)."""
    if read_before is not None:
        if stamp <= read_before:
            return BeatReading.SEEN
        return BeatReading.WALL if stamp - wall_now <= skew_s else BeatReading.SINCE
    if stamp - (wall_now if first_now is None else first_now) <= skew_s:
        return BeatReading.WALL
    return BeatReading.ANCHORED if anchored else BeatReading.UNKNOWN


def anchored_heard(stamp: float, anchor: Anchor, table_now: float) -> float:
    """When on the table's clock the row stamped ``stamp`` was written, by ``anchor``:
    its heard time moved by the stamps' difference, never later than ``table_now``."""
    return min(table_now, anchor.heard + (stamp - anchor.stamp))


def newer_anchor(anchor: Anchor | None, stamp: float, heard: float) -> Anchor:
    """The anchor to keep after a sure reading: the one of the newer stamp."""
    if anchor is not None and anchor.stamp > stamp:
        return anchor
    return Anchor(stamp, heard)
