"""What the soak (``benchmarks/soak.py``) watches: processes, files, tables, logs, metrics."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from soak_load import Stats

CLI = [sys.executable, "-m", "LLM_Mesh.cli"]


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    logf: IO[bytes] | None = None

    def start(self) -> None:
        self.logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*CLI, *self.args], env=self.env, stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def pids(self) -> list[int]:
        """The process and its descendants (``llm-mesh up`` runs children)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(x) for x in task.read_text().split()]
        return out


def proc_stats(pid: int) -> tuple[float, int]:
    """(RSS in MB, open fds) of ``pid``; (0, 0) when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError):
        return 0.0, 0


def tree_files(home: Path) -> dict[str, int]:
    return {str(p.relative_to(home)): p.stat().st_size for p in home.rglob("*") if p.is_file()}


async def db_tables(db_url: str | None, home: Path) -> dict[str, Any]:
    if db_url is None:
        return {k: v for k, v in tree_files(home).items() if "registry.db" in k}
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(db_url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid) AS size"
            " FROM pg_stat_user_tables ORDER BY size DESC"
        )
        states = await conn.fetch("SELECT state, count(*) FROM settlements GROUP BY state")
    finally:
        await conn.close()
    return {
        "tables": {r["relname"]: [r["n_live_tup"], r["n_dead_tup"], r["size"]] for r in rows},
        "settlements": {r["state"]: r["count"] for r in states},
    }


def sample(procs: list[Proc], homes: list[Path], t0: float, st: Stats) -> dict[str, Any]:
    ps = {}
    for p in procs:
        for k, pid in enumerate(p.pids()):
            rss, fds = proc_stats(pid)
            ps[p.name + (f".{k}" if k else "")] = [round(rss, 1), fds]
    files = {}
    for h in homes:
        tf = tree_files(h)
        files[h.name] = [len(tf), sum(tf.values())]
    total = sum(st.counts.values())
    fives = sum(v for (k, s), v in st.counts.items() if s >= 500 or s < 0)
    return {"t": round(time.monotonic() - t0), "proc": ps, "files": files,
            "requests": total, "5xx": fives, "bad": len(st.failures)}  # fmt: skip


def scan_logs(logdir: Path) -> dict[str, dict[str, int]]:
    out = {}
    for f in sorted(logdir.glob("*.log")):
        c: Counter[str] = Counter()
        for line in f.read_text(errors="replace").splitlines():
            if "Traceback" in line:
                c["traceback"] += 1
            if " ERROR " in line or '"level": "ERROR"' in line:
                c["error"] += 1
            if " WARNING " in line or '"level": "WARNING"' in line:
                c["warning"] += 1
        out[f.name] = dict(c)
    return out


def metrics_in_flight(url: str) -> dict[str, float]:
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("in_flight", "waiting_requests", "_queued ", "nodes_healthy", "nodes_ejected",
                     "request_records_total"):  # fmt: skip
            if name in line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
    return out
