"""What making the ledger durable before each checkpoint costs on SQLite
(``registry/ledger_durable.py``), against the other sound options.

A SQLite file in WAL mode with ``synchronous=NORMAL``, as the store runs it, takes
``--every`` ledger-like appends (one transaction each: an entry row and two balance
updates), then the step before a checkpoint is signed. Per round, interleaved:

- ``none``: no step (before the fix: the checkpoint may be ahead of the disk; the files are
  synced after it is timed, so each step finds only its own ``--every`` appends unsynced);
- ``fsync``: ``ledger_durable.sync_log`` (the fix: ``fsync`` of ``-wal``);
- ``wal_checkpoint(FULL)``: SQLite's own full checkpoint (syncs the log, copies it into the
  file, syncs that; waits for readers and writers);
- ``synchronous=FULL``: every append commits with an ``fsync`` (no step): the cost is the
  appends' extra time against ``NORMAL``.

Nothing is simulated: real files on the disk of ``--dir`` (default: a temporary folder in
the repository, not ``/tmp``, which may be memory). One command:
``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_ledger_durable.py``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, log, machine_line

from LLM_Mesh.registry.ledger_durable import sync_log


def connect(db: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, body BLOB, leaf BLOB)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, amount INT)")
    conn.execute("INSERT OR IGNORE INTO balances VALUES ('a', 0), ('b', 0)")
    return conn


def appends(conn: sqlite3.Connection, n: int) -> float:
    """``n`` append transactions; seconds."""
    t = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO entries (body, leaf) VALUES (randomblob(200), randomblob(32))")
        conn.execute("UPDATE balances SET amount = amount - 1 WHERE account = 'a'")
        conn.execute("UPDATE balances SET amount = amount + 1 WHERE account = 'b'")
        conn.execute("COMMIT")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=1000, help="appends between two checkpoints")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = ap.parse_args()
    log(machine_line())
    base = args.dir or ROOT
    res: dict[str, list[float]] = {k: [] for k in ("none", "fsync", "wal_checkpoint(FULL)")}
    normal_s: list[float] = []
    full_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-durable-", dir=base) as tmp:
        db = Path(tmp) / "registry.db"
        normal = connect(db, "NORMAL")
        full = connect(Path(tmp) / "full.db", "FULL")
        appends(normal, 100)  # warm: the files exist
        appends(full, 100)
        for _ in range(args.rounds):
            for step in res:
                normal_s.append(appends(normal, args.every))
                t = time.perf_counter()
                if step == "fsync":
                    sync_log(db)
                elif step == "wal_checkpoint(FULL)":
                    normal.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
                res[step].append(time.perf_counter() - t)
                if step == "none":  # each step finds only its own appends unsynced
                    sync_log(db)
            full_s.append(appends(full, args.every))
        normal.close()
        full.close()
    med = statistics.median
    log(f"{args.every} appends a checkpoint, {args.rounds} rounds, files in {base}")
    log(f"appends, synchronous=NORMAL: {med(normal_s) / args.every * 1e6:.1f} µs each (median)")
    log(f"appends, synchronous=FULL:   {med(full_s) / args.every * 1e6:.1f} µs each (median)")
    extra = (med(full_s) - med(normal_s)) * 1e3
    print("| step before a checkpoint | median ms a checkpoint | lowest | highest |")
    print("|---|---|---|---|")
    for step, xs in res.items():
        print(f"| {step} | {med(xs) * 1e3:.3f} | {min(xs) * 1e3:.3f} | {max(xs) * 1e3:.3f} |")
    print(f"| synchronous=FULL on every append (extra time of {args.every} appends) | "
          f"{extra:.1f} | | |")  # fmt: skip


if __name__ == "__main__":
    main()
