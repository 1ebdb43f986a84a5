"""The cheapest path of benchmarks that broke on main unnoticed, run with tiny counts: a
benchmark that does not run is a defect (docs/benchmarks.md cites their commands), and
``test_imports.py`` only sees a name that is gone, not a call whose arguments changed.

Found 2026-12-05, each failing on its documented command: ``bench_metrics.py`` in its
phase 0 (``Job`` had no ``price_per_1k`` any more); ``bench_gateway.py --no-auth-target``
on its first request (``noauth/sitecustomize.py`` patched ``GatewayGuard.check``, which the
node no longer called: its node refused every request); ``bench_settlement.py``'s part 2
on an import (``operator_account``: accounts are keyed by the ledger's secret now);
``probe_hot_calls_ab.py`` and ``probe_relay_cold.py`` on their stand-ins (short of what the
code they drive reads now). ``probe_control_reads.py``'s heartbeat case answers 400 by
design (its size bound): checked to say why.

One interpreter runs every piece (one start-up for all: the suite's time), from
``benchmarks/`` as ``python benchmarks/X.py`` does, each piece's outcome or error kept apart;
none is skipped. (``probe_settle_once.py``, also fixed that day, needs PostgreSQL: not here.)
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
import asyncio, contextlib, io, json, sys, tempfile, traceback
sys.path.insert(0, sys.argv[1])
out = {}


def piece(name):
    def run(fn):
        try:
            out[name] = {"result": fn(), "error": None}
        except BaseException:
            out[name] = {"result": None, "error": traceback.format_exc()[-3000:]}
    return run


@piece("metrics_phase_0")
def _():
    import bench_metrics
    return bench_metrics.hooks(repeats=1, n=20)


@piece("settlement_part_2")
def _():
    import bench_settlement
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(bench_settlement.settlements_per_s(f"sqlite:///{d}/s.db", 4, 2, 2))


@piece("control_reads_heartbeat")
def _():
    import probe_control_reads
    said, argv = io.StringIO(), sys.argv
    sys.argv = ["worker", "heartbeat"]
    try:
        with contextlib.redirect_stdout(said):
            exec(probe_control_reads.WORKER, {"__name__": "__main__"})
    finally:
        sys.argv = argv
    return json.loads(said.getvalue().strip().splitlines()[-1])


@piece("hot_calls_ab")
def _():
    import probe_hot_calls_ab
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        asyncio.run(probe_hot_calls_ab._run(1, 5))
    return said.getvalue().splitlines()


@piece("hot_calls_perf38")
def _():
    import probe_hot_calls_perf38
    said, argv = io.StringIO(), sys.argv
    sys.argv = ["probe_hot_calls_perf38.py", "--rounds", "1", "--calls", "5"]
    try:
        with contextlib.redirect_stdout(said):
            probe_hot_calls_perf38.main()
    finally:
        sys.argv = argv
    return said.getvalue().splitlines()[1:]


@piece("relay_cold")
def _():
    import probe_relay_cold
    return list(asyncio.run(probe_relay_cold.one(5, None)))


@piece("node_hops")
def _():
    import uvloop, probe_node_hops as p
    from LLM_Mesh.node.app import _Handler
    node = uvloop.run(p._node(3, warm=0))
    wakes = p._wakes(3, 0.0)
    return {"node": node, "wakes": wakes, "restored": "wrapper" not in repr(_Handler.parse)}


@piece("no_auth_target")
def _():
    import httpx, bench_gateway as bg
    from _common import SIM_FAST_NODE_ARGS, keyed_headers
    with contextlib.redirect_stdout(io.StringIO()):
        with bg.no_auth_mesh(SIM_FAST_NODE_ARGS) as mesh, httpx.Client(timeout=30) as c:
            bg.HEADERS_BY_URL[mesh.registry_url] = keyed_headers(mesh)
            bg.check(c, "ours-a0", mesh.registry_url)  # the benchmark's first request
            # its node called with no gateway headers at all (unpatched: 401)
            r = c.post(mesh.node_url + "/v1/chat/completions", json=bg.BODY)
            return {"node_status": r.status_code, "node_text": r.text[:300]}


print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pieces() -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(BENCHMARKS)], capture_output=True, text=True,
        timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def _result(pieces: dict[str, dict[str, Any]], name: str) -> Any:
    assert pieces[name]["error"] is None, pieces[name]["error"]
    return pieces[name]["result"]


def test_bench_metrics_phase_0_times_the_hooks(pieces: dict[str, dict[str, Any]]) -> None:
    costs = _result(pieces, "metrics_phase_0")
    assert sorted(costs) == ["gateway_line", "gateway_metrics", "node_metrics"]
    assert all(v > 0 for v in costs.values()), costs


def test_bench_gateway_no_auth_target_serves_without_gateway_signature(
    pieces: dict[str, dict[str, Any]],
) -> None:
    got = _result(pieces, "no_auth_target")
    assert got["node_status"] == 200, got


def test_bench_settlement_part_2_settles_and_audits(pieces: dict[str, dict[str, Any]]) -> None:
    got = _result(pieces, "settlement_part_2")
    assert got["audit_ok"] is True and got["requests"] == 4, got


def test_probe_control_reads_heartbeat_says_why_it_is_refused(
    pieces: dict[str, dict[str, Any]],
) -> None:
    got = _result(pieces, "control_reads_heartbeat")
    # its size bound (core/schemas.MAX_HEARTBEAT_BYTES), what the probe measures since
    # 2026-12-05, not a broken probe
    assert (got["status"], got["code"], got["param"]) == (400, "invalid_request", "loaded_models")


def test_probe_hot_calls_ab_runs_both_calls(pieces: dict[str, dict[str, Any]]) -> None:
    lines = _result(pieces, "hot_calls_ab")
    assert [line.split(":")[0] for line in lines] == ["Http1Pool.post_pooled", "parse.read_body"]


def test_probe_hot_calls_perf38_times_both_pairs(pieces: dict[str, dict[str, Any]]) -> None:
    lines = _result(pieces, "hot_calls_perf38")
    assert [line.split(":")[0] for line in lines] == ["cap", "encoding"]


def test_probe_relay_cold_relays_a_whole_stream(pieces: dict[str, dict[str, Any]]) -> None:
    median_us, mean_us = _result(pieces, "relay_cold")  # it checks the stream ended "ok"
    assert median_us > 0 and mean_us > 0


def test_probe_node_hops_times_the_node_and_a_wake_up(pieces: dict[str, dict[str, Any]]) -> None:
    got = _result(pieces, "node_hops")
    steps = got["node"]
    assert len(steps) == 9 and all(len(v) == 3 and min(v) > 0 for v in steps.values()), steps
    # the way before llama, step by step, in order (each request's)
    for i in range(3):
        way = [v[i] for name, v in steps.items() if name.startswith("ASGI call")]
        assert len(way) == 6 and way == sorted(way), steps
    assert all(len(v) == 3 and min(v) > 0 for v in got["wakes"].values()), got["wakes"]
    assert got["restored"], "the probe leaves the node's classes as it found them"
