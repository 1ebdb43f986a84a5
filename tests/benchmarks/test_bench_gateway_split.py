"""``benchmarks/bench_gateway.py``: the server CPU a request split into the gateway's share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bg():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(_DIR))
    try:
        import bench_gateway

        yield bench_gateway
    finally:
        sys.path.remove(str(_DIR))


def test_the_gateway_share_is_the_registry_processes_cpu_a_request(bg) -> None:  # type: ignore[no-untyped-def]
    s = bg.Series(lat_s=[0.001] * 9, wall_s=1.0, server_cpu_s=0.009, gateway_cpu_s=0.006, errors=1)
    got = bg.summarize({"ours": s})["ours"]
    assert got["server_cpu_us_per_req"] == pytest.approx(900.0)
    assert got["gateway_cpu_us_per_req"] == pytest.approx(600.0)


def test_a_run_reads_the_registry_processes_apart_from_the_node(bg) -> None:  # type: ignore[no-untyped-def]
    me = os.getpid()
    url = "http://127.0.0.1:1"
    bg.SERVER_PIDS[url], bg.GATEWAY_PIDS[url] = [me], [me]
    try:
        s = bg.Series()
        bg.run_sequential(_Refusing(), url, 3, s)
    finally:
        del bg.SERVER_PIDS[url], bg.GATEWAY_PIDS[url]
    assert s.errors == 3 and 0 < s.gateway_cpu_s <= s.server_cpu_s + 1e-3


class _Refusing:
    def post(self, *_a: object, **_k: object) -> object:
        sum(range(200_000))  # some CPU in "the server" (this process)
        return type("R", (), {"status_code": 503})()
