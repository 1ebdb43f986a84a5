"""The settler's ledger append on SQLite, in one synchronous call on settlement's own connection.

On a SQLite store the settler does not use SQLAlchemy (``registry/ledger.py``): it
writes the ``settle`` and ``fee`` entries of a batch of answered requests with the
standard ``sqlite3`` module, on the connection the hot path uses
(``registry/settle_db.py``; run in that connection's thread, so the event loop runs on
meanwhile), inside one ``BEGIN IMMEDIATE`` transaction, in the same
rows and the same order as :meth:`~LLM_Mesh.registry.ledger.SqlLedger.append` with the
guard of :func:`~LLM_Mesh.registry.settle_ledger.settle`:

1. the head row's lock and values (``UPDATE ledger_head ... RETURNING``);
2. the guard: the batch's rows flip ``answered`` → ``settled`` (``RETURNING``); unless every
   part of every request flipped, :class:`Refused` (the caller rolls back and retries one
   request at a time: exactly once, as ``settle_ledger.settle``); then each payer's
   ``reserved`` drops by what its requests held, in account order;
   the revoked among the batch's held nodes (a quarantined node's share, ``hold``), whose
   share is forfeited in the same batch (``settle_ledger.transfers``);
3. the entries (each committing to the previous one), the tree nodes they complete, each
   account's ``balance`` (account order) and the new head.

Why: an append through SQLAlchemy's async engine is a chain of thread hops (the ledger
thread's loop, aiosqlite's thread, each statement a hand-off), and in a gateway those
threads compete with the event loop for the interpreter lock on every request; measured
on the 2-core box, the settler's threads cost the gateway about as much CPU per request
as the rest of settlement (``docs/benchmarks.md``, Settlement). One synchronous call has
one hand-off (not one a statement) and holds the write lock only as long as the append's
own statements take.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from LLM_Mesh.core.ledger_entry import Transfer
from LLM_Mesh.registry.ledger import balance_deltas, build_batch, entry_row
from LLM_Mesh.registry.ledger_tree import pack_frontier, unpack_frontier
from LLM_Mesh.registry.settle_db import Answer
from LLM_Mesh.registry.settle_ledger import held_nodes, transfers

__all__ = ["Refused", "append_settled"]

_HEAD = (
    "UPDATE ledger_head SET size = size WHERE id = 1 "
    "RETURNING size, frontier, last_leaf, last_time_us"
)
_RELEASE = "UPDATE balances SET reserved = reserved - ? WHERE account = ?"
_ENTRY = (
    "INSERT INTO ledger_entries (seq, time_us, kind, from_account, to_account, amount, "
    "request_id, receipt_hash, prev_hash, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NODE = "INSERT INTO ledger_nodes (id, hash) VALUES (?, ?)"
_BALANCE = (
    "INSERT INTO balances (account, balance, reserved) VALUES (?, ?, 0) "
    "ON CONFLICT (account) DO UPDATE SET balance = balances.balance + excluded.balance"
)
_REVOKED = "SELECT node_id FROM node_keys WHERE node_id IN ({marks}) AND revoked_at IS NOT NULL"
_NEW_HEAD = (
    "UPDATE ledger_head SET size = ?, frontier = ?, last_leaf = ?, last_time_us = ? WHERE id = 1"
)


class Refused(Exception):
    """Some row of the batch was not ``answered`` (settled or voided elsewhere)."""


def _flip(conn: sqlite3.Connection, answers: Sequence[Answer], now: str) -> None:
    keys = [a.key for a in answers]
    marks = ", ".join("?" for _ in keys)
    flipped = conn.execute(
        "UPDATE settlements SET state = 'settled', updated_at = ? "
        f"WHERE request_id IN ({marks}) AND state = 'answered' RETURNING request_id",
        (now, *keys),
    ).fetchall()
    if len(flipped) != sum(len(a.parts) for a in answers):
        raise Refused
    held: dict[str, int] = {}
    for a in answers:
        held[a.payer] = held.get(a.payer, 0) + a.total
    conn.executemany(_RELEASE, [(amount, payer) for payer, amount in sorted(held.items())])


def append_settled(
    conn: sqlite3.Connection, answers: Sequence[Answer], now: str, now_us: int
) -> int:
    """Settle ``answers`` into the ledger inside the caller's transaction; the ledger's
    new size. :class:`Refused` when not every part was ``answered`` (nothing may then be
    committed: the caller rolls back). ``now``: the rows' ``updated_at`` as SQLite text;
    ``now_us``: the entries' time (never before the last entry's)."""
    row = conn.execute(_HEAD).fetchone()
    if row is None:  # pragma: no cover - the migration makes the head row
        raise RuntimeError("the ledger has no head row")
    _flip(conn, answers, now)
    revoked: frozenset[str] = frozenset()
    nodes = held_nodes(answers)
    if nodes:  # rare: a batch paying a quarantined node; a revoked one's share forfeited
        marks = ", ".join("?" for _ in nodes)
        found = conn.execute(_REVOKED.format(marks=marks), nodes).fetchall()
        revoked = frozenset(str(r[0]) for r in found)
    moves: list[Transfer] = [t for a in answers for t in transfers(a, revoked)]
    b = build_batch(
        moves, int(row[0]), unpack_frontier(bytes(row[1])), bytes(row[2]), max(now_us, int(row[3]))
    )
    conn.executemany(_ENTRY, [entry_row(e) for e in b.entries])
    if b.nodes:
        conn.executemany(_NODE, b.nodes)
    conn.executemany(_BALANCE, balance_deltas(moves))
    conn.execute(_NEW_HEAD, (b.size, pack_frontier(b.frontier), b.last_leaf, b.time_us))
    return b.size
