"""The store's recurring reads over a long settlement history, on SQLite: each call's time
and SQLite's plan, this tree against ``--baseline-tree`` in one run.

Method: one SQLite store at head (the registry's schema, no planner statistics: what a
registry runs with) holding ``--rows`` ``settlements`` rows over 380 days (1 in 40 void,
the rest settled; 50 pending and 100 answered, all of holder ``h1``), ``--operators``
operators (and nodes), one ledger entry per settled row (paid to its operator; the
``balances`` rows their sums) and hourly ``reward_periods`` of every node over the 380
days. For ``--rounds`` rounds, a process per tree (this, then the baseline; alternated
order each round) on a fresh copy of the file calls each read ``--reps`` times: the
median ms of each, and its SQLite plan (``EXPLAIN QUERY PLAN`` of the statements sent).
``--analyze``: ``ANALYZE`` each copy first (SQLite's planner statistics). Reads:
``earnings`` (an operator, 30 days), ``node_totals`` (30 days), ``answered_rows`` of
``h1`` (recovery), ``void_pending`` of ``h1`` (the first call voids its pending rows, the
rest find none: the read is what is timed), ``prune_settlements`` with a cutoff before
the history (the hourly run with nothing due).

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_store_plans.py
[--rows 200000] [--operators 10] [--rounds 3] [--reps 7] [--analyze] [--baseline-tree DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# a child runs the package of the tree it was started for (``PROBE_TREE``), not this one
sys.path.insert(0, os.environ.get("PROBE_TREE") or str(Path(__file__).resolve().parent.parent))

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
SPAN_DAYS = 380


def build(path: Path, rows: int, operators: int) -> None:
    """The store at head, then the history written straight into the file."""
    from LLM_Mesh.registry.store import SqlStore

    async def migrate() -> None:
        async with SqlStore(f"sqlite:///{path}"):
            pass

    asyncio.run(migrate())
    db = sqlite3.connect(path)
    start = NOW - timedelta(days=SPAN_DAYS)
    step = SPAN_DAYS * 86400 / rows
    settle, entries, paid = [], [], {}
    for i in range(rows):
        state = "void" if i % 40 == 0 else "settled"
        if i >= rows - 100:
            state = "answered"
        elif i >= rows - 150:
            state = "pending"
        at = (start + timedelta(seconds=i * step)).strftime("%Y-%m-%d %H:%M:%S.%f")
        op = f"operator:{i % operators}"
        settle.append(
            (f"c-{i:024x}~r.chat", 0, "pool", f"n{i % operators}", op, "m", 5, 5, 1, state, at, at, "h1")
        )  # fmt: skip
        if state == "settled":
            entries.append((len(entries) + 1, i, "settle", "pool", op, 4, settle[-1][0], "x", "x"))
            paid[op] = paid.get(op, 0) + 4
    db.executemany(
        "INSERT INTO settlements (request_id, part, payer, node_id, operator, model, estimate, "
        "amount, fee, state, created_at, updated_at, holder) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        settle,
    )
    db.executemany(
        "INSERT INTO ledger_entries (seq, time_us, kind, from_account, to_account, amount, "
        "request_id, prev_hash, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?)",
        entries,
    )
    db.executemany(
        "INSERT INTO balances (account, balance, reserved) VALUES (?, ?, 0)", sorted(paid.items())
    )
    first = int(start.timestamp()) // 3600 * 3600
    periods = [
        (f"n{n}", first + h * 3600, 3600, f"operator:{n}", 1000, 0, 1000, 1000, 7, None, "x")
        for n in range(operators)
        for h in range(SPAN_DAYS * 24)
    ]
    db.executemany(
        "INSERT INTO reward_periods (node_id, period_start, period_s, operator, healthy_ms, "
        "mark_ms, performance, success, amount, entry_seq, created_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        periods,
    )
    db.commit()
    db.close()


def child(path: str, reps: int) -> None:
    """Time each read ``reps`` times on the store at ``path``; JSON on stdout."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    from LLM_Mesh.registry.earnings import earnings, node_totals
    from LLM_Mesh.registry.retention import prune_settlements
    from LLM_Mesh.registry.settle_ledger import answered_rows, void_pending

    async def main() -> dict[str, Any]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        sent: list[tuple[str, Any]] = []
        event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda _c, _k, sql, p, _x, _m: sent.append((sql, p)),
        )
        now = NOW.timestamp()
        calls: dict[str, Any] = {
            "earnings": lambda: earnings(
                engine, operator="o", account="operator:0", nodes=["n0"], days=30, now=now
            ),
            "node_totals": lambda: node_totals(engine, days=30, now=now),
            "answered_rows": lambda: answered_rows(engine, ["h1"]),
            "void_pending": lambda: void_pending(engine, "h1", NOW),
            "prune (nothing due)": lambda: prune_settlements(
                engine, NOW - timedelta(days=SPAN_DAYS + 20), 1000
            ),
        }
        out: dict[str, Any] = {}
        for name, call in calls.items():
            times = []
            for _ in range(reps):
                sent.clear()
                t0 = time.perf_counter()
                await call()
                times.append((time.perf_counter() - t0) * 1000)
            db = sqlite3.connect(path)
            plan = [
                r[-1]
                for sql, p in sent
                if "ledger_secrets" not in sql and not sql.startswith("INSERT")
                for r in db.execute("EXPLAIN QUERY PLAN " + sql, p)
            ]
            db.close()
            out[name] = {"ms": statistics.median(times[1:] or times), "plan": plan}
        await engine.dispose()
        return out

    print(json.dumps(asyncio.run(main())))


def run_tree(tree: str, src: Path, work: Path, reps: int, analyze: bool) -> dict[str, Any]:
    copy = work / "copy.db"
    shutil.copyfile(src, copy)
    if analyze:  # SQLite's statistics, whole (no analysis_limit): the standard remedy
        db = sqlite3.connect(copy)
        db.execute("ANALYZE")
        db.commit()
        db.close()
    tree = str(Path(tree).resolve())
    env = dict(os.environ, PYTHONPATH=tree, PROBE_TREE=tree)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(copy), "--reps", str(reps)],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--operators", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--analyze", action="store_true", help="ANALYZE each copy first")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.reps)
        return
    this = str(Path(__file__).resolve().parent.parent)
    trees = {"this": this} | ({"base": a.baseline_tree} if a.baseline_tree else {})
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "store.db"
        build(src, a.rows, a.operators)
        print(f"{a.rows} settlements rows, {a.operators} operators, {src.stat().st_size >> 20} MiB")
        got: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
        plans: dict[str, dict[str, list[str]]] = {}
        for r in range(a.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for t in order:
                res = run_tree(trees[t], src, work, a.reps, a.analyze)
                for name, v in res.items():
                    got[t].setdefault(name, []).append(v["ms"])
                    plans.setdefault(t, {})[name] = v["plan"]
        print(f"end {datetime.now(timezone.utc):%H:%M:%S} UTC, load {os.getloadavg()[0]:.1f}")
    names = list(got["this"])
    head = "| read | this ms (rounds) |" + (
        " base ms (rounds) | base ÷ this |" if "base" in got else ""
    )
    print(head)
    for n in names:
        mine = got["this"][n]
        line = f"| {n} | {statistics.median(mine):.2f} ({', '.join(f'{x:.2f}' for x in mine)}) |"
        if "base" in got:
            theirs = got["base"][n]
            ratio = statistics.median(theirs) / statistics.median(mine)
            line += f" {statistics.median(theirs):.2f} ({', '.join(f'{x:.2f}' for x in theirs)}) |"
            line += f" {ratio:.0f}× |"
        print(line)
    for t, by in plans.items():
        for n, plan in by.items():
            print(f"plan {t} {n}: {plan}")


if __name__ == "__main__":
    main()
