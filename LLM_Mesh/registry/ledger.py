"""The ledger's writer: append-only entries in a Merkle tree, on the store's database.

:meth:`SqlLedger.append` is the one way money moves: it writes a batch of
:class:`~LLM_Mesh.core.ledger_entry.Transfer` s atomically (all or none) and returns
the entries with their sequence numbers. In one transaction it

1. takes the head row's lock and reads it in one statement (``UPDATE ledger_head SET
   size = size ... RETURNING`` size, frontier, last leaf hash, last time: a row lock on
   PostgreSQL, the database's write lock on SQLite), so concurrent appends from any
   number of registry processes serialise and sequence numbers never collide;
2. computes the entries (each leaf commits to the previous one);
3. writes the entries, the tree nodes they complete (``registry/ledger_tree.py``), the
   new head, and each account's new ``balance`` (``balances``, in account order; its
   ``reserved`` column belongs to settlement, ``registry/settlement.py``).

Entry times never go backwards (a clock step back writes the last entry's time).
Proofs and historical roots are read from the stored complete-subtree hashes.
Checkpoints are read with their witnesses' cosignature lines (``ledger_cosignatures``,
``registry/ledger_cosign.py``) appended to each note.
After a commit, ``on_append(size)`` is called (the checkpointer's wake-up).

The engine comes from ``get_engine`` (the store's, or :func:`memory_engine` for a
registry on a :class:`~LLM_Mesh.registry.memory_store.MemoryStore`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.checkpoint import Checkpoint
from LLM_Mesh.core.ledger_entry import MAX_AMOUNT, MINT, LedgerEntry, Transfer, make_entry
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger_tree import (
    append_leaf,
    consistency_ranges,
    frontier_root,
    inclusion_ranges,
    node_key,
    pack_frontier,
    range_hash,
    range_nodes,
    unpack_frontier,
)

__all__ = [
    "Batch", "CheckpointRecord", "IssueLimit", "LedgerError", "SqlLedger", "balance_deltas",
    "build_batch", "entry_of", "entry_row", "memory_engine",
]  # fmt: skip

_HEAD = 1
MAX_BATCH = 10_000
_ROWS_SQL = (
    "SELECT seq, time_us, kind, from_account, to_account, amount, request_id, receipt_hash,"
    " prev_hash, leaf_hash FROM ledger_entries WHERE seq > {} ORDER BY seq LIMIT {}"
)


class LedgerError(ValueError):
    """A ledger read asked for something the tree does not have (a size, an index)."""


@dataclass(frozen=True)
class CheckpointRecord:
    tree_size: int
    root_hash: str
    time_us: int
    public_key: str
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "object": "ledger.checkpoint",
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "time_us": self.time_us,
            "public_key": self.public_key,
            "note": self.note,
        }


def entry_of(row: Any) -> LedgerEntry:
    return LedgerEntry(
        seq=int(row.seq), time_us=int(row.time_us), kind=row.kind,
        from_account=row.from_account, to_account=row.to_account, amount=int(row.amount),
        request_id=row.request_id, receipt_hash=row.receipt_hash, prev_hash=row.prev_hash,
        leaf_hash=row.leaf_hash,
    )  # fmt: skip


_ENTRY_COLUMNS = (
    "seq", "time_us", "kind", "from_account", "to_account", "amount", "request_id",
    "receipt_hash", "prev_hash", "leaf_hash",
)  # fmt: skip


def _driver_insert(conn: AsyncConnection, table: str, columns: Sequence[str]) -> str:
    """A plain ``INSERT`` in the driver's own parameter style: many rows go to the
    driver's ``executemany`` as tuples, without SQLAlchemy's per-row parameter
    processing (most of a large append's time, measured: ``benchmarks/bench_settlement.py``)."""
    if conn.dialect.paramstyle == "numeric_dollar":  # asyncpg
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    else:  # sqlite3 / aiosqlite: qmark
        marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def entry_row(e: LedgerEntry) -> tuple[Any, ...]:
    """An entry as its ``ledger_entries`` row, in the columns' order."""
    return (
        e.seq, e.time_us, e.kind, e.from_account, e.to_account, e.amount, e.request_id,
        e.receipt_hash, e.prev_hash, e.leaf_hash,
    )  # fmt: skip


@dataclass
class Batch:
    """What appending some transfers writes: the entries, the new tree nodes, and the
    head after them (size, frontier, last leaf, time)."""

    entries: list[LedgerEntry]
    nodes: list[tuple[int, bytes]]
    size: int
    frontier: list[bytes]
    last_leaf: bytes
    time_us: int


def build_batch(
    transfers: Sequence[Transfer], size: int, frontier: list[bytes], prev: bytes, time_us: int
) -> Batch:
    """The entries and Merkle nodes for ``transfers`` appended after the head (``size``
    entries, ``frontier``, last leaf ``prev``), all at ``time_us``: the one place both
    writers (:class:`SqlLedger` and ``settle_sqlite``) build them."""
    entries: list[LedgerEntry] = []
    nodes: list[tuple[int, bytes]] = []
    for t in transfers:
        entry, leaf = make_entry(size, time_us, t, prev)
        frontier, new = append_leaf(frontier, size, leaf)
        nodes.extend((node_key(lv, ix), nh) for lv, ix, nh in new)
        entries.append(entry)
        prev, size = leaf, size + 1
    return Batch(entries, nodes, size, frontier, prev, time_us)


def balance_deltas(transfers: Sequence[Transfer]) -> list[tuple[str, int]]:
    """How each account's balance moves, non-zero only, in account order (so concurrent
    transactions lock the rows in one order)."""
    deltas: dict[str, int] = {}
    for t in transfers:
        deltas[t.from_account] = deltas.get(t.from_account, 0) - t.amount
        deltas[t.to_account] = deltas.get(t.to_account, 0) + t.amount
    return [(a, d) for a, d in sorted(deltas.items()) if d]


def _insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


async def _add_to_balances(conn: AsyncConnection, transfers: Sequence[Transfer]) -> None:
    """Move the transfers' amounts in ``balances`` (rows made as needed), in account order
    (so concurrent transactions lock the rows in one order)."""
    b = tables.balances
    ins = pg_insert(b) if conn.dialect.name == "postgresql" else sqlite_insert(b)
    stmt = ins.on_conflict_do_update(
        index_elements=[b.c.account], set_={"balance": b.c.balance + ins.excluded.balance}
    )
    rows = [{"account": a, "balance": d, "reserved": 0} for a, d in balance_deltas(transfers)]
    if rows:
        await conn.execute(stmt, rows)


class IssueLimit(ValueError):
    """The mint would issue more than ``MAX_AMOUNT`` µNT in all (a balance is a 64-bit
    integer: SQLite would make the sum a float, PostgreSQL refuse it): nothing written."""


async def _check_issue(conn: AsyncConnection, transfers: Sequence[Transfer]) -> None:
    """:class:`IssueLimit` when the mint's balance would fall below ``-MAX_AMOUNT`` (so
    every balance stays a 64-bit integer: the accounts sum to zero); under the head lock."""
    if not any(t.from_account == MINT for t in transfers):  # settlement's batches: no read
        return
    delta = dict(balance_deltas(transfers)).get(MINT, 0)
    b = tables.balances
    row = (await conn.execute(select(b.c.balance).where(b.c.account == MINT))).first()
    now = 0 if row is None else int(row.balance)
    if now + delta < -MAX_AMOUNT:
        raise IssueLimit(
            f"the mint has issued {-now} micro-NetworkTokens; {-delta} more would pass the "
            f"most a balance can hold ({MAX_AMOUNT}): refused, nothing written"
        )


_SCRATCH_PREFIX = "llm-mesh-ledger-"


async def memory_engine() -> AsyncEngine:
    """A private scratch SQLite database (a file in a new temporary directory, removed by
    :meth:`EngineOnce.dispose`), migrated: the ledger of a memory-store registry.

    A file, not ``:memory:``: one in-memory connection shared by concurrent tasks would
    let one task's rollback undo another's transaction.
    """
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    from LLM_Mesh.registry.store_migrate import upgrade

    path = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX)) / "ledger.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
    return engine


async def _cosigned(conn: AsyncConnection, rows: Sequence[Any]) -> list[CheckpointRecord]:
    """``ledger_checkpoints`` rows as records, each note followed by the cosignature lines
    stored for its size (in witness order: one read for all of them)."""
    if not rows:
        return []
    w = tables.ledger_cosignatures
    sizes = [int(r.tree_size) for r in rows]
    stmt = (
        select(w.c.tree_size, w.c.line)
        .where(w.c.tree_size >= min(sizes), w.c.tree_size <= max(sizes))
        .order_by(w.c.tree_size, w.c.witness)
    )
    lines: dict[int, list[str]] = {}
    for size, line in (await conn.execute(stmt)).all():
        lines.setdefault(int(size), []).append(line)
    return [
        CheckpointRecord(
            int(r.tree_size),
            r.root_hash,
            int(r.time_us),
            r.public_key,
            r.note + "".join(lines.get(int(r.tree_size), ())),
        )
        for r in rows
    ]


class _Refused(Exception):
    """A guard said no: the append's transaction is rolled back."""


class SqlLedger:
    """The ledger on one SQLAlchemy engine (see the module docstring)."""

    def __init__(
        self,
        get_engine: Callable[[], Awaitable[AsyncEngine]],
        *,
        wall_clock: Callable[[], float] = time.time,
        on_append: Callable[[int], None] | None = None,
    ) -> None:
        self._get_engine = get_engine
        self._wall_clock = wall_clock
        self.on_append = on_append

    async def engine(self) -> AsyncEngine:
        return await self._get_engine()

    # -- writing ------------------------------------------------------------------

    async def append(
        self,
        transfers: Sequence[Transfer],
        *,
        guard: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> list[LedgerEntry]:
        """Write ``transfers`` atomically, in order; the entries written.

        ``guard``, if given, runs inside the same transaction once the head is locked
        (appends are serialised there), before anything is written: it may write rows
        of its own (a settlement's state, a reward period) that commit with the
        entries, and returning ``False`` rolls everything back and writes nothing
        (``[]`` is returned): the way to append exactly once per key.
        """
        if not transfers:
            return []
        if len(transfers) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} transfers in one append")
        now_us = int(self._wall_clock() * 1_000_000)
        engine = await self.engine()
        try:
            entries = await self._write(engine, transfers, now_us, guard)
        except _Refused:
            return []
        if self.on_append is not None:
            self.on_append(entries[-1].seq + 1)
        return entries

    async def _write(
        self,
        engine: AsyncEngine,
        transfers: Sequence[Transfer],
        now_us: int,
        guard: Callable[[AsyncConnection], Awaitable[bool]] | None,
    ) -> list[LedgerEntry]:
        h = tables.ledger_head
        async with engine.begin() as conn:
            lock = (
                update(h)
                .where(h.c.id == _HEAD)
                .values(size=h.c.size)
                .returning(h.c.size, h.c.frontier, h.c.last_leaf, h.c.last_time_us)
            )
            head = (await conn.execute(lock)).one()
            if guard is not None and not await guard(conn):
                raise _Refused
            await _check_issue(conn, transfers)
            batch = build_batch(
                transfers,
                int(head.size),
                unpack_frontier(bytes(head.frontier)),
                bytes(head.last_leaf),
                max(now_us, int(head.last_time_us)),
            )
            await conn.exec_driver_sql(
                _driver_insert(conn, "ledger_entries", _ENTRY_COLUMNS),
                [entry_row(x) for x in batch.entries],
            )
            if batch.nodes:
                await conn.exec_driver_sql(
                    _driver_insert(conn, "ledger_nodes", ("id", "hash")), batch.nodes
                )
            await _add_to_balances(conn, transfers)
            await conn.execute(
                update(h)
                .where(h.c.id == _HEAD)
                .values(
                    size=batch.size,
                    frontier=pack_frontier(batch.frontier),
                    last_leaf=batch.last_leaf,
                    last_time_us=batch.time_us,
                )
            )
        return batch.entries

    async def locked(self, work: Callable[[AsyncConnection], Awaitable[bool]]) -> bool:
        """Run ``work`` in a transaction holding the head lock, as an append's guard runs,
        when there is nothing to append: its writes commit if it returns ``True``."""
        h = tables.ledger_head
        engine = await self.engine()
        try:
            async with engine.begin() as conn:
                await conn.execute(update(h).where(h.c.id == _HEAD).values(size=h.c.size))
                if not await work(conn):
                    raise _Refused
        except _Refused:
            return False
        return True

    async def append_one(self, transfer: Transfer) -> LedgerEntry:
        return (await self.append([transfer]))[0]

    # -- the tree -----------------------------------------------------------------------

    async def head(self) -> tuple[int, bytes]:
        """The tree's size and root now."""
        h = tables.ledger_head
        engine = await self.engine()
        async with engine.connect() as conn:
            row = (await conn.execute(select(h.c.size, h.c.frontier).where(h.c.id == _HEAD))).one()
        return int(row.size), frontier_root(unpack_frontier(bytes(row.frontier)))

    async def _ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = {n for lo, hi in ranges for n in range_nodes(lo, hi)}
        if not wanted:
            return []
        n = tables.ledger_nodes
        keys = {node_key(lv, ix): (lv, ix) for lv, ix in wanted}
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(n.c.id, n.c.hash).where(n.c.id.in_(list(keys))))
            ).all()
        stored = {keys[int(r.id)]: bytes(r.hash) for r in rows}
        if len(stored) != len(keys):
            raise LedgerError("the ledger's tree is missing nodes")
        return [range_hash(lo, hi, stored) for lo, hi in ranges]

    async def _size(self) -> int:
        return (await self.head())[0]

    async def root_at(self, tree_size: int) -> bytes:
        """The root of the tree of the first ``tree_size`` entries."""
        size = await self._size()
        if not 0 <= tree_size <= size:
            raise LedgerError(f"tree_size must be 0 to {size}")
        if tree_size == 0:
            return frontier_root([])
        return (await self._ranges([(0, tree_size)]))[0]

    async def inclusion_proof(self, index: int, tree_size: int) -> tuple[bytes, bytes, list[bytes]]:
        """(leaf hash, root, audit path) of entry ``index`` in the tree of ``tree_size``."""
        size = await self._size()
        if not 1 <= tree_size <= size:
            raise LedgerError(f"tree_size must be 1 to {size}")
        if not 0 <= index < tree_size:
            raise LedgerError(f"index must be 0 to {tree_size - 1}")
        ranges = [(index, index + 1), (0, tree_size), *inclusion_ranges(index, tree_size)]
        leaf, root, *path = await self._ranges(ranges)
        return leaf, root, path

    async def consistency_proof(self, first: int, second: int) -> tuple[bytes, bytes, list[bytes]]:
        """(first root, second root, proof) from the tree of ``first`` to ``second``."""
        size = await self._size()
        if not 0 <= second <= size:
            raise LedgerError(f"second must be 0 to {size}")
        if not 0 <= first <= second:
            raise LedgerError(f"first must be 0 to {second}")
        if first == 0:  # the empty tree's root is no range of leaves
            return frontier_root([]), await self.root_at(second), []
        # both roots and the proof's subtrees in one read
        r1, r2, *proof = await self._ranges(
            [(0, first), (0, second), *consistency_ranges(first, second)]
        )
        return r1, r2, proof

    # -- reading entries ---------------------------------------------------------------

    async def entries(self, after: int, limit: int) -> tuple[list[LedgerEntry], bool]:
        """Entries with ``seq > after``, oldest first, at most ``limit``; and whether more follow."""
        e = tables.ledger_entries
        stmt = select(e).where(e.c.seq > after).order_by(e.c.seq).limit(limit + 1)
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [entry_of(r) for r in rows[:limit]], len(rows) > limit

    async def entry_rows(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Entries with ``seq > after``, oldest first, at most ``limit``, as plain tuples in
        :data:`~LLM_Mesh.core.ledger_entry.ENTRY_FIELDS` order (the bulk export's and the
        auditor's shape: no object per entry).

        On aiosqlite and asyncpg the query goes to the driver directly (``_ROWS_SQL``):
        the rows come as the driver makes them, at half the CPU of SQLAlchemy's rows;
        any other driver reads through SQLAlchemy.
        """
        engine = await self.engine()
        async with engine.connect() as conn:
            driver = conn.dialect.driver
            if driver in ("aiosqlite", "asyncpg"):
                raw: Any = (await conn.get_raw_connection()).driver_connection
                if driver == "aiosqlite":
                    async with raw.execute(_ROWS_SQL.format("?", "?"), (after, limit)) as cur:
                        return list(map(tuple, await cur.fetchall()))
                return list(map(tuple, await raw.fetch(_ROWS_SQL.format("$1", "$2"), after, limit)))
            e = tables.ledger_entries
            cols = (
                e.c.seq, e.c.time_us, e.c.kind, e.c.from_account, e.c.to_account, e.c.amount,
                e.c.request_id, e.c.receipt_hash, e.c.prev_hash, e.c.leaf_hash,
            )  # fmt: skip
            stmt = select(*cols).where(e.c.seq > after).order_by(e.c.seq).limit(limit)
            return [tuple(r) for r in (await conn.execute(stmt)).all()]

    async def balances(self) -> dict[str, int]:
        """Every account's balance (credits less debits), by SQL sums."""
        e = tables.ledger_entries
        engine = await self.engine()
        out: dict[str, int] = {}
        async with engine.connect() as conn:
            for col, sign in ((e.c.to_account, 1), (e.c.from_account, -1)):
                rows = await conn.execute(select(col, func.sum(e.c.amount)).group_by(col))
                for acct, total in rows:
                    out[acct] = out.get(acct, 0) + sign * int(total)
        return out

    async def stored_balances(
        self, accounts: Sequence[str] | None = None
    ) -> tuple[int, dict[str, tuple[int, int]]]:
        """The tree's size and the ``balances`` rows (account → ``(balance, reserved)``) of
        ``accounts`` (``None``: all) in one statement: one snapshot, to hold against the
        first ``size`` entries (``ledger verify``; ``GET /v1/balance``, one account)."""
        h, b = tables.ledger_head, tables.balances
        on = literal(True) if accounts is None else b.c.account.in_(list(accounts))
        stmt = select(h.c.size, b.c.account, b.c.balance, b.c.reserved)
        stmt = stmt.select_from(h.outerjoin(b, on)).where(h.c.id == _HEAD)
        async with (await self.engine()).connect() as conn:
            rows = (await conn.execute(stmt)).all()
        out = {r.account: (int(r.balance), int(r.reserved)) for r in rows if r.account}
        return (int(rows[0].size) if rows else 0), out

    # -- checkpoints and keys ---------------------------------------------------------------

    async def add_checkpoint(self, cp: Checkpoint, public_key: str) -> bool:
        """Store a signed checkpoint; ``False`` when one for that size exists."""
        engine = await self.engine()
        async with engine.begin() as conn:
            stmt = _insert_ignore(conn, tables.ledger_checkpoints).values(
                tree_size=cp.tree_size, root_hash=cp.root_hash.hex(), time_us=cp.time_us,
                public_key=public_key, note=cp.note,
            )  # fmt: skip
            return bool((await conn.execute(stmt)).rowcount == 1)

    async def checkpoints(self, after: int, limit: int) -> tuple[list[CheckpointRecord], bool]:
        """Checkpoints with ``tree_size > after``, oldest first, at most ``limit``, each
        note with its witnesses' cosignature lines appended; and whether more follow."""
        c = tables.ledger_checkpoints
        stmt = select(c).where(c.c.tree_size > after).order_by(c.c.tree_size).limit(limit + 1)
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
            out = await _cosigned(conn, rows[:limit])
        return out, len(rows) > limit

    async def latest_checkpoint(self) -> CheckpointRecord | None:
        c = tables.ledger_checkpoints
        stmt = select(c).order_by(c.c.tree_size.desc()).limit(1)
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
            out = await _cosigned(conn, rows)
        return out[0] if out else None

    async def checkpoint_at(self, tree_size: int) -> CheckpointRecord | None:
        """The checkpoint signed at ``tree_size`` (its own note, no cosignatures), if any."""
        c = tables.ledger_checkpoints
        engine = await self.engine()
        async with engine.connect() as conn:
            r = (await conn.execute(select(c).where(c.c.tree_size == tree_size))).first()
        if r is None:
            return None
        return CheckpointRecord(int(r.tree_size), r.root_hash, int(r.time_us), r.public_key, r.note)

    async def add_cosignature(self, tree_size: int, witness: str, time_s: int, line: str) -> bool:
        """Store a witness's cosignature line (checked by the caller) of the checkpoint at
        ``tree_size``; ``False`` when that witness's is stored already (the first is kept)."""
        engine = await self.engine()
        async with engine.begin() as conn:
            stmt = _insert_ignore(conn, tables.ledger_cosignatures).values(
                tree_size=tree_size, witness=witness, time_s=time_s, line=line
            )
            return bool((await conn.execute(stmt)).rowcount == 1)

    async def add_key(self, public_key: str, at: datetime) -> None:
        engine = await self.engine()
        async with engine.begin() as conn:
            await conn.execute(
                _insert_ignore(conn, tables.ledger_keys).values(
                    public_key=public_key, created_at=at
                )
            )

    async def keys(self) -> list[tuple[str, datetime]]:
        k = tables.ledger_keys
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(k).order_by(k.c.created_at, k.c.public_key))).all()
        return [(r.public_key, r.created_at) for r in rows]


class EngineOnce:
    """``get_engine`` for :class:`SqlLedger` that makes its engine once, on first use."""

    def __init__(self, make: Callable[[], Awaitable[AsyncEngine]]) -> None:
        self._make = make
        self._engine: AsyncEngine | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> AsyncEngine:
        if self._engine is None:
            async with self._lock:
                if self._engine is None:
                    self._engine = await self._make()
        return self._engine

    async def dispose(self) -> None:
        """Dispose of the engine; a scratch database of :func:`memory_engine` is removed."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
            folder = Path(engine.url.database or "").parent
            if folder.name.startswith(_SCRATCH_PREFIX):
                shutil.rmtree(folder, ignore_errors=True)
