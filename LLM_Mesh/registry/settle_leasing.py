"""Settlement's reservation leases on the hot path: :class:`SettleLeasing`, a base of
:class:`~LLM_Mesh.registry.settlement.Settlement` (split from ``registry/settlement.py``;
the book is ``core/lease_book.py``, the writes ``registry/settle_lease.py``).

A take refused may still be covered by what the other takes of its lease grew it by
(:meth:`SettleLeasing._after_takes`: those in flight are tracked per lease,
:meth:`SettleLeasing._took`); leases idle for ``lease_idle_s`` go back every
``lease_idle_s / 2`` (:meth:`SettleLeasing.give_back`, written like a void).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.registry.settle_db import Op, Reserved
from LLM_Mesh.registry.settle_lease import Give, Take

__all__ = ["LEASED", "SettleLeasing"]

log = logging.getLogger("LLM_Mesh.registry.settlement")

LEASED = Reserved(True, 0, 0)  # admitted from a lease in memory (nothing read)


class SettleLeasing:
    """The takes in flight per lease, a refused take's second look, idle leases handed
    back (module docstring)."""

    leases: LeaseBook | None
    lease_idle_s: float
    in_flight: set[str]
    _taking: dict[str, set[asyncio.Future[Any]]]  # lease id -> takes in flight

    def _write(
        self, op: Op, others: bool, *, reply: bool = True
    ) -> Any:  # pragma: no cover - Settlement's
        raise NotImplementedError

    def _took(self, lease_id: str, fut: asyncio.Future[Any]) -> None:
        taking = self._taking.setdefault(lease_id, set())
        taking.add(fut)

        def done(_: object) -> None:
            taking.discard(fut)
            if not taking:
                self._taking.pop(lease_id, None)

        fut.add_done_callback(done)

    async def _after_takes(self, op: Take, refused: Reserved) -> Reserved:
        """A take refused (nor the request reserved alone): what the other takes of its
        lease grew it by may cover the request (in a burst each take admits one request
        and leaves the rest of its growth free), those done in its batch at once, those
        still in flight once they are done (one wait: a refusal is never put off longer);
        else the refusal stands."""
        for wait in (False, True):
            taking = self._taking.get(op.lease.lease_id)
            if wait and taking:
                await asyncio.wait(set(taking))
            if self.leases is not None and self.leases.admit(
                op.key, op.payer, op.estimate, time.monotonic()
            ):
                return LEASED
            if not taking:
                break
        return refused

    def give_back(self, now: float) -> int:
        """Hand back the leases idle at ``now`` (monotonic; written like a void); how many."""
        idle = [] if self.leases is None else self.leases.idle(now)
        for lease in idle:
            try:
                self._write(Give(lease), bool(self.in_flight), reply=False)
            except Exception:  # back in the book (lease_wrote): the next round; the rest now
                log.exception("settlement: could not hand lease %s back", lease.lease_id)
        return len(idle)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_idle_s / 2)
            self.give_back(time.monotonic())  # a give that fails: the book's again
