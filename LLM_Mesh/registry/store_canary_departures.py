"""The store's canary-departure tallies (migration 0030): the evidence every replica shares.

:class:`SqlCanaryDepartures` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine``), :class:`MemoryCanaryDepartures` into the memory store;
``registry/canary_departures_sync.py`` drives them. A batch is one transaction: the rows of
the (node, model) pairs started afresh or forgotten deleted first, then each key's step
(``core/canary_departures_step.Step``: ``s ↦ max(floor, s + shift)`` and its counts) applied
in the row by one ``UPDATE`` (a row that did not exist is inserted at 0 first, ``ON
CONFLICT DO NOTHING``): on PostgreSQL a second replica's update of the row waits for the
first's commit and applies its step to the row the first wrote (read committed re-reads
it), so every probe counts once whoever adds to the row; SQLite has one writer. Rows left at
0 are deleted (a row at 0 is a row that does not exist). Commits do not wait for the disk
(``relaxed_commit``: a crash loses at most the last second of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.canary_departures import Key
from LLM_Mesh.core.canary_departures_step import Counts, Step
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.store_replicas import relaxed_commit

__all__ = ["TALLY_CLASSES", "DepartureRow", "MemoryCanaryDepartures", "SqlCanaryDepartures"]

DepartureRow = tuple[Key, Counts]
"""A tally as the store holds it."""

TALLY_CLASSES = ("pairs", "kinds", "slices")
"""The store's tallies by table of ``core/canary_departures.Departures``, each bounded apart
(``prune_canary_departures``'s ``caps``)."""

_COUNTS = ("probes", "departures", "at_first")
_CHUNK = 4096  # keys a statement (asyncpg: 32,767 arguments at most)


def class_of(key: Key) -> str:
    """The table a tally keyed (node, model, kind, slice) is of."""
    return "slices" if key[3] else "kinds" if key[2] else "pairs"


def _forgotten(drops: Iterable[tuple[str, str | None]]) -> Any:
    d = tables.canary_departures
    return or_(
        *(
            d.c.node_id == n if m is None else and_(d.c.node_id == n, d.c.model == m)
            for n, m in drops
        )
    )


def _params(k: Key, s: Step, written: float) -> dict[str, Any]:
    """One key's step as the ``UPDATE``'s parameters."""
    f = s.fresh
    return {"k_node": k[0], "k_model": k[1], "k_kind": k[2], "k_slice": k[3],
            "shift": s.shift, "floor": s.floor, "n_probes": s.probes,
            "n_departures": s.departures, "n_at_first": s.at_first, "f_probes": f.probes,
            "f_departures": f.departures, "f_at_first": f.at_first, "w": written}  # fmt: skip


class SqlCanaryDepartures:
    """The tallies on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def add_canary_departures(
        self, steps: Mapping[Key, Step], drops: list[tuple[str, str | None]], written: float
    ) -> None:
        d = tables.canary_departures
        keys = sorted(steps)  # one order at every replica: two batches never wait in a cycle
        async with self.engine.begin() as conn:
            await relaxed_commit(conn)
            for at in range(0, len(drops), 256):
                await conn.execute(delete(d).where(_forgotten(drops[at : at + 256])))
            if not keys:
                return
            zero = {"score": 0.0, "probes": 0, "departures": 0, "at_first": 0, "written": written}
            rows = [{"node_id": k[0], "model": k[1], "kind": k[2], "slice": k[3], **zero}
                    for k in keys]  # fmt: skip
            insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            await conn.execute(insert(d).on_conflict_do_nothing(), rows)
            carried = d.c.score + bindparam("shift") > bindparam("floor")
            counts = {
                c: case((carried, d.c[c] + bindparam(f"n_{c}")), else_=bindparam(f"f_{c}"))
                for c in _COUNTS
            }
            stmt = (
                update(d)
                .where(
                    d.c.node_id == bindparam("k_node"),
                    d.c.model == bindparam("k_model"),
                    d.c.kind == bindparam("k_kind"),
                    d.c.slice == bindparam("k_slice"),
                )
                .values(
                    score=case((carried, d.c.score + bindparam("shift")), else_=bindparam("floor")),
                    written=bindparam("w"),
                    **counts,
                )
            )
            params = [_params(k, steps[k], written) for k in keys]
            await conn.execute(stmt, params)
            nodes = sorted({k[0] for k in keys})
            for at in range(0, len(nodes), _CHUNK):
                part = nodes[at : at + _CHUNK]
                await conn.execute(delete(d).where(d.c.node_id.in_(part), d.c.score <= 0.0))

    async def canary_departure_rows(
        self, pairs: Iterable[tuple[str, str]] | None = None
    ) -> list[DepartureRow]:
        d = tables.canary_departures
        out: list[DepartureRow] = []
        async with self.engine.connect() as conn:
            if pairs is None:
                found = (await conn.execute(select(d))).all()
            else:
                wanted = sorted(set(pairs))
                found = []
                for at in range(0, len(wanted), 256):
                    part = wanted[at : at + 256]
                    which = or_(*(and_(d.c.node_id == n, d.c.model == m) for n, m in part))
                    found += (await conn.execute(select(d).where(which))).all()
        for r in found:
            key = (r.node_id, r.model, r.kind, r.slice)
            out.append((key, Counts(float(r.score), int(r.probes), int(r.departures),
                                    int(r.at_first))))  # fmt: skip
        return out

    async def prune_canary_departures(self, caps: Mapping[str, int], before: float) -> int:
        d = tables.canary_departures
        which = {
            "pairs": (d.c.kind == "") & (d.c.slice == ""),
            "kinds": (d.c.kind != "") & (d.c.slice == ""),
            "slices": d.c.slice != "",
        }
        dropped = 0
        async with self.engine.begin() as conn:
            for name, cap in caps.items():
                where = which[name]
                count = int((await conn.execute(select(func.count()).where(where))).scalar() or 0)
                over = count - max(1, cap)
                if over <= 0:
                    continue
                pick = (
                    select(d.c.node_id, d.c.model, d.c.kind, d.c.slice)
                    .where(where, d.c.written < before)  # never a tally just written
                    .order_by(d.c.score, d.c.written)
                    .limit(over)
                )
                keys = (await conn.execute(pick)).all()
                if keys:
                    stmt = delete(d).where(
                        d.c.node_id == bindparam("n"), d.c.model == bindparam("m"),
                        d.c.kind == bindparam("k"), d.c.slice == bindparam("s"),
                    )  # fmt: skip
                    await conn.execute(stmt, [{"n": n, "m": m, "k": k, "s": s}
                                              for n, m, k, s in keys])  # fmt: skip
                dropped += len(keys)
        return dropped


class MemoryCanaryDepartures:
    """The tallies in a dict (the SQL store's rules)."""

    def __init__(self) -> None:
        self.canary_departures: dict[Key, tuple[Counts, float]] = {}

    async def add_canary_departures(
        self, steps: Mapping[Key, Step], drops: list[tuple[str, str | None]], written: float
    ) -> None:
        rows = self.canary_departures
        for n, m in drops:
            for key in [k for k in rows if k[0] == n and (m is None or k[1] == m)]:
                del rows[key]
        for key, step in steps.items():
            now = step.apply(rows.get(key, (Counts(), 0.0))[0])
            rows.pop(key, None)
            if now.score > 0.0:
                rows[key] = (now, written)

    async def canary_departure_rows(
        self, pairs: Iterable[tuple[str, str]] | None = None
    ) -> list[DepartureRow]:
        wanted = None if pairs is None else set(pairs)
        return [
            (k, c)
            for k, (c, _) in self.canary_departures.items()
            if wanted is None or k[:2] in wanted
        ]

    async def prune_canary_departures(self, caps: Mapping[str, int], before: float) -> int:
        rows, dropped = self.canary_departures, 0
        for name, cap in caps.items():
            mine = [k for k in rows if class_of(k) == name]
            over = len(mine) - max(1, cap)
            old = sorted((rows[k][0].score, rows[k][1], k) for k in mine if rows[k][1] < before)
            for _, _, k in old[: max(0, over)]:
                del rows[k]
                dropped += 1
        return dropped
