"""A settlement holder's reservation leases, in memory: which request is admitted from which
lease, how much a lease must grow, when it goes back (pure; docs/ARCHITECTURE.md, Settlement).

A *lease* is a block of a payer's balance that one holder (a gateway process) reserved in
the database once (``registry/settle_lease.py``). The book admits a request against a
lease's ``free`` part (its amount less the estimates of the requests it holds) without a
write; a void gives the estimate back. When the lease cannot cover an estimate the caller
writes a *take*: the lease grows to ``estimates`` estimates free after this request's
(:meth:`LeaseBook.plan`), or the request is reserved alone when the payer's available
balance is too low for that (the database decides; ``margin``: leases are refused near
the end of a balance). An answer moves its exact total out of the lease (the database's
write, then :meth:`LeaseBook.spent`). A lease nobody used for ``idle_s``, or one the
database no longer had (``lost``: recovery released it), is handed back
(:meth:`LeaseBook.idle`) once no request and no write of its is in flight.

The book is only ever a hint for the database's conditional writes: a wrong amount here
can make a request fall back to a reservation of its own, never overspend.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

__all__ = ["Lease", "LeaseBook"]

_ids = itertools.count(1)


@dataclass(eq=False)
class Lease:
    lease_id: str
    payer: str
    amount: int = 0  # as the database holds it once the writes done so far committed
    held: int = 0  # estimates of the requests admitted against it, not answered or voided
    ops: int = 0  # its writes started and not done yet
    used: float = 0.0  # when it last admitted or finished a request (monotonic seconds)
    lost: bool = False  # no longer used: the database did not have it (or it went back)
    grown: bool = False  # a take grew it: it has a row in the database (to hand back)

    @property
    def free(self) -> int:
        return self.amount - self.held

    @property
    def busy(self) -> bool:
        return self.held > 0 or self.ops > 0


class LeaseBook:
    """One holder's leases (see the module docstring)."""

    def __init__(self, estimates: int, idle_s: float) -> None:
        if estimates < 1:
            raise ValueError("a lease is at least one estimate")
        self.estimates = estimates
        self.idle_s = idle_s
        self.current: dict[str, Lease] = {}  # payer -> the lease its requests use
        self.leases: dict[str, Lease] = {}  # lease id -> every lease not handed back yet
        self.admitted: dict[str, tuple[Lease, int]] = {}  # request -> (lease, its estimate)
        self.from_memory = 0  # requests admitted without a write
        self.taken = 0  # takes that grew a lease
        self.given = 0  # leases handed back

    def admit(self, key: str, payer: str, estimate: int, now: float) -> bool:
        """Admit request ``key`` against ``payer``'s lease if its free part covers it."""
        lease = self.current.get(payer)
        if lease is None or lease.free < estimate or estimate <= 0:
            return False
        self._hold(lease, key, estimate, now)
        self.from_memory += 1
        return True

    def plan(self, payer: str, estimate: int) -> tuple[Lease, int, int]:
        """The take to write for a request that :meth:`admit` refused: ``(lease, grow,
        margin)``: grow the lease by ``grow`` (its free part then ``estimates`` estimates,
        this request's one of them) if the payer's available balance is at least ``grow +
        margin`` (``margin``: ``estimates`` estimates left to the others), else reserve
        the request alone."""
        lease = self.current.get(payer)
        if lease is None:
            lease = Lease(f"l-{os.urandom(6).hex()}-{next(_ids)}", payer)
            self.current[payer] = lease
            self.leases[lease.lease_id] = lease
        lease.ops += 1
        grow = max(estimate, self.estimates * estimate - max(lease.free, 0))
        return lease, grow, self.estimates * estimate

    def took(self, lease: Lease, key: str, estimate: int, grew: int | None, now: float) -> None:
        """A take's outcome: ``grew`` (the lease grew by it; the request is admitted from
        it), or ``None`` (the request was reserved alone, or the write failed)."""
        lease.ops -= 1
        if grew is not None:
            lease.amount += grew
            lease.grown = True
            self.taken += 1
            self._hold(lease, key, estimate, now)

    def void(self, key: str, now: float) -> bool:
        """Request ``key`` ends unpaid: its estimate back to its lease; ``False``: it was
        not admitted from a lease."""
        got = self.admitted.pop(key, None)
        if got is None:
            return False
        lease, estimate = got
        lease.held -= estimate
        lease.used = now
        return True

    def spend(self, key: str) -> Lease | None:
        """Request ``key`` is being answered: its lease (``None``: not from a lease); its
        estimate stays held until :meth:`spent`."""
        got = self.admitted.get(key)
        if got is None:
            return None
        got[0].ops += 1
        return got[0]

    def spent(self, key: str, total: int | None, from_lease: bool, now: float) -> None:
        """An answer's write is done: ``total`` moved out of the lease (``from_lease``), or
        reserved from the payer's balance instead (the lease was gone or short: lost), or
        not recorded (``total`` ``None``)."""
        got = self.admitted.pop(key, None)
        if got is None:
            return
        lease, estimate = got
        lease.ops -= 1
        lease.held -= estimate
        lease.used = now
        if total is not None and from_lease:
            lease.amount -= total
        elif total is not None:
            self.lose(lease)

    def lose(self, lease: Lease) -> None:
        """No more requests on ``lease``; it goes back once idle (:meth:`idle`)."""
        lease.lost = True
        if self.current.get(lease.payer) is lease:
            del self.current[lease.payer]

    def idle(self, now: float) -> list[Lease]:
        """The leases to hand back now (lost, or unused for ``idle_s``, and nothing in
        flight on them); they leave the book (one that never grew, its takes all refused,
        leaves it without being handed back: it has no row)."""
        gone = [
            x for x in self.leases.values()
            if not x.busy and (x.lost or now - x.used >= self.idle_s)
        ]  # fmt: skip
        for lease in gone:
            self.lose(lease)
            del self.leases[lease.lease_id]
        out = [x for x in gone if x.grown]
        self.given += len(out)
        return out

    def clear(self) -> None:
        """Everything forgotten (the database's leases were released)."""
        self.current.clear()
        self.leases.clear()
        self.admitted.clear()

    def _hold(self, lease: Lease, key: str, estimate: int, now: float) -> None:
        lease.held += estimate
        lease.used = now
        self.admitted[key] = (lease, estimate)
