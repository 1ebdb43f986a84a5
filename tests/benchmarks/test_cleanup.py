"""Benchmarks that leave nothing behind: their temporary folders removed and their
PostgreSQL database dropped at the end, also when they stop on an error or Ctrl-C.

Found 2026-12-05: ``bench_replicas.py`` left its ``mkdtemp`` folder (homes, logs) after
every run and its database ``llm_mesh_bench_replicas`` on the server; ``bench_heartbeats.py``
left its home ``$TMPDIR/llm-mesh-bench-heartbeats`` after every run, and its database when
it stopped early; ``bench_heartbeat_path.py`` left its ``mkdtemp`` home after every run.

Each benchmark runs in its own interpreter from ``benchmarks/`` (as ``python
benchmarks/X.py`` does) with ``TMPDIR`` a fresh folder of the test's; the stop is an
exception raised where the benchmark would next do real work (its processes, its load),
so the tests take seconds. The runner says what is left in that folder and whether the
database still exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"

RUNNER = r"""
import asyncio, json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
piece, tmp = sys.argv[2], sys.argv[3]
os.environ["TMPDIR"] = tmp
tempfile.tempdir = tmp


class Stop(Exception):
    pass


def stop(*_a, **_k):
    raise STOP


STOP = KeyboardInterrupt() if piece.endswith("ctrl_c") else Stop("stopped by the test")
out = {"stopped": False}
try:
    if piece == "heartbeat_path":
        import bench_heartbeat_path as bench
        out["parts"] = sorted(asyncio.run(bench.run(3)))
    elif piece == "heartbeat_path_ctrl_c":
        import bench_heartbeat_path as bench
        import LLM_Mesh.registry.api as api
        api.absorb_heartbeat = stop  # the first heartbeat
        asyncio.run(bench.run(3))
    elif piece == "replicas_ctrl_c":
        import bench_replicas as bench
        bench._spawn = stop  # the first registry process
        bench.main(["--seconds", "0.1", "--nodes", "1"])
    elif piece == "heartbeats_error":
        import bench_heartbeats as bench
        bench._isolated_batches = stop  # the registry up, before any load
        bench.main(["--nodes", "3", "--seconds", "0.1", "--legs", "hot"])
except (Stop, KeyboardInterrupt):
    out["stopped"] = True
out["left"] = sorted(os.listdir(tmp))
if hasattr(bench, "DB"):
    import asyncpg

    async def exists():
        conn = await asyncpg.connect(bench._db_url("postgres"))
        try:
            return await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", bench.DB)
        finally:
            await conn.close()

    out["db"], out["db_exists"] = bench.DB, asyncio.run(exists()) is not None
print(json.dumps(out))
"""


def _run(piece: str, tmp: Path, **env: str) -> dict[str, Any]:
    tmp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(BENCHMARKS), piece, str(tmp)], capture_output=True,
        text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def test_bench_heartbeat_path_removes_its_home(tmp_path: Path) -> None:
    got = _run("heartbeat_path", tmp_path / "tmp")
    assert "absorb_heartbeat" in got["parts"], got  # it ran
    assert got["left"] == [], got


def test_bench_heartbeat_path_removes_its_home_on_ctrl_c(tmp_path: Path) -> None:
    got = _run("heartbeat_path_ctrl_c", tmp_path / "tmp")
    assert got["stopped"] is True, got
    assert got["left"] == [], got


@pytest.mark.parametrize(
    "piece",
    ["replicas_ctrl_c", "heartbeats_error"],
    ids=["bench_replicas-ctrl_c", "bench_heartbeats-error"],
)
def test_a_postgresql_benchmark_removes_its_folder_and_database_when_stopped(
    tmp_path: Path, pg_database_url: str, piece: str
) -> None:
    """The benchmark's database: the fixture's (this test's name prefix, dropped by the
    fixture whatever happens), on the fixture's server."""
    from sqlalchemy.engine import make_url

    name = make_url(pg_database_url).database
    assert name is not None
    env = {"LLM_MESH_BENCH_DB": name, "LLM_MESH_TEST_PG_URL": pg_database_url}
    got = _run(piece, tmp_path / "tmp", **env)
    assert got["stopped"] is True, got
    assert got["left"] == [], got
    assert (got["db"], got["db_exists"]) == (name, False), got
