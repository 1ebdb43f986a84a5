"""The settler's flip (``answered`` → ``settled``, ``settle_sqlite._flip``) on SQLite: the
statement as main wrote it (``state = 'answered'``: SQLite reads every answered row by
``ix_settlements_state``) against this branch's (``state || ''``: the batch's keys), CPU
a batch, with a given number of answered rows in flight.

Method: the store of ``probe_store_plans.py`` (``--rows`` settlements, no planner
statistics), then ``--in-flight`` rows left ``answered``; a batch of ``--batch`` of them
flipped and rolled back, ``--reps`` times a block, blocks of the two statements
alternated (``--rounds`` each); thread CPU µs a batch, paired median of the difference.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_flip.py
[--rows 200000] [--in-flight 3 10 100 2000] [--batch 3] [--rounds 31] [--reps 300]``
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_store_plans import build

FLIP = (
    "UPDATE settlements SET state = 'settled', updated_at = ? "
    "WHERE request_id IN ({marks}) AND {state} = 'answered' RETURNING request_id"
)
MAIN, THIS = FLIP.replace("{state}", "state"), FLIP.replace("{state}", "state || ''")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[3, 10, 100, 2000])
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--reps", type=int, default=300)
    a = ap.parse_args()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        build(path, a.rows, 10)
        db = sqlite3.connect(path, isolation_level=None)
        print(
            "| answered in flight | main µs a batch | this µs a batch | this − main, paired median |"
        )
        print("|---:|---:|---:|---:|")
        for n in a.in_flight:  # the newest ``n`` rows answered, the rest settled
            db.execute("UPDATE settlements SET state = 'settled' WHERE state != 'void'")
            db.execute(
                "UPDATE settlements SET state = 'answered' WHERE rowid IN "
                "(SELECT rowid FROM settlements ORDER BY rowid DESC LIMIT ?)",
                (n,),
            )
            keys = [r[0] for r in db.execute("SELECT request_id FROM settlements "
                                             "WHERE state = 'answered' LIMIT ?", (a.batch,))]  # fmt: skip
            marks = ", ".join("?" for _ in keys)
            got: dict[str, list[float]] = {"main": [], "this": []}
            for r in range(a.rounds):
                pair = [("main", MAIN), ("this", THIS)]
                for name, sql in pair if r % 2 else reversed(pair):
                    stmt = sql.format(marks=marks)
                    t0 = time.thread_time()
                    for _ in range(a.reps):
                        db.execute("BEGIN")
                        flipped = db.execute(stmt, ("2026-12-05 00:00:00", *keys)).fetchall()
                        db.execute("ROLLBACK")
                        assert len(flipped) == len(keys)
                    got[name].append((time.thread_time() - t0) / a.reps * 1e6)
            diff = [t - m for m, t in zip(got["main"], got["this"], strict=True)]
            lower = sum(d < 0 for d in diff)
            print(
                f"| {n} | {statistics.median(got['main']):.1f} | {statistics.median(got['this']):.1f}"
                f" | {statistics.median(diff):+.2f} ({lower}/{len(diff)} lower) |"
            )
        db.close()
    print(f"end {datetime.now(timezone.utc):%H:%M:%S} UTC, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
