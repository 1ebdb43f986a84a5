"""A store's ledger tables read directly: the source ``llm-mesh ledger verify
--database-url`` audits (an operator's audit; ``cli/ledger_commands.py``), with the
store's ``balances`` rows to hold against the entries (``SqlLedger.stored_balances``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

__all__ = ["StoreSource"]

Row = Sequence[object]  # an entry in ENTRY_FIELDS order


class StoreSource:
    """The ledger tables of a store, read directly (an operator's audit)."""

    stored_every = True  # every balances row of the store

    def __init__(self, ledger: Any, origin: str) -> None:
        self.ledger, self.origin = ledger, origin
        self.created: dict[str, int | None] | None = None  # keys() reads it: key -> created
        # the rotation chain the verifier's home keeps (an operator's registry.key.rotations)
        self.key_rotations: object = None

    async def keys(self) -> tuple[list[str], str]:
        rows = await self.ledger.keys()
        self.created = {k: int(at.timestamp()) for k, at in rows}  # as GET /v1/ledger/keys
        return [k for k, _ in rows], self.origin

    async def checkpoints(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            cps, more = await self.ledger.checkpoints(after, 10_000)
            out.extend(c.to_json() for c in cps)
            if not more or not cps:
                return out
            after = cps[-1].tree_size

    async def entries(self, page: int) -> AsyncIterator[list[Row]]:
        after = -1
        while True:
            rows = await self.ledger.entry_rows(after, page)
            if rows:
                yield rows
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def consistency(self, first: int, second: int) -> list[bytes]:
        size = (await self.ledger.head())[0]
        if second > size:  # a checkpoint newer than the store: it lacks what that one covers
            # (found 2026-12-06, newuser37: `--compare` said "(second must be 0 to 141)")
            raise ValueError(
                f"this database's ledger holds {size} entries, so it lacks entries {size} to "
                f"{second - 1}, which that checkpoint covers: a database restored from an "
                "older backup, or another network's (docs/deploy.md, 'Restoring the database')"
            )
        return list((await self.ledger.consistency_proof(first, second))[2])

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        return list((await self.ledger.inclusion_proof(index, size))[2])

    async def stored(self) -> tuple[int, dict[str, tuple[int, int]]]:
        return await self.ledger.stored_balances()  # type: ignore[no-any-return]
