"""A node's shutdown when its registry is gone, as a process: SIGTERM → exit within the
node's shutdown bound (``LLM_MESH_NODE_SHUTDOWN_S``, ``core/shutdown.py``), whatever the
registry does, and the log says what became of the goodbye."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.e2e.standin_registry import StandIn, exit_time, start_node, wait_serving

pytestmark = pytest.mark.e2e

SHUTDOWN_S = 4.0  # drain 0.5 s, the goodbye until 3 s after the signal, 1 s to close
SLACK_S = 3.0  # the interpreter's own exit on a loaded box; still far below the old 16 s


def _said(log_path: Path) -> list[str]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            out.append(str(json.loads(line).get("msg", "")))
        except ValueError:
            out.append(line)
    return out


async def _shut_down(tmp_path: Path, gone: str) -> tuple[float, list[str]]:
    reg = StandIn()
    reg_port, node_port = free_port(), free_port()
    await reg.start(reg_port)
    proc, log_path = start_node(
        tmp_path / "home", f"http://127.0.0.1:{reg_port}", node_port,
        LLM_MESH_NODE_SHUTDOWN_S=str(SHUTDOWN_S),
    )  # fmt: skip
    node_url = f"http://127.0.0.1:{node_port}"
    stream: asyncio.Task[None] | None = None
    try:
        await wait_serving(node_url, reg)
        if gone == "hangs":  # a generation in flight (0.5 tokens/s: far longer than the bound)
            started = asyncio.Event()
            stream = asyncio.create_task(reg.stream(node_url, "mistral-7b", started))
            await asyncio.wait_for(started.wait(), 30)
            reg.mode = "hang"
        else:
            await reg.close()
        proc.send_signal(signal.SIGTERM)
        took = await exit_time(proc, 30.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        if stream is not None:
            stream.cancel()
        await reg.close()
    return took, _said(log_path)


async def test_a_node_whose_registry_is_gone_exits_at_once_and_skips_the_goodbye(
    tmp_path: Path,
) -> None:
    took, said = await _shut_down(tmp_path, "refuses")
    assert took < SHUTDOWN_S + SLACK_S, said[-10:]
    skipped = [m for m in said if "goodbye skipped" in m]
    assert len(skipped) == 1, said[-10:]
    assert "heartbeats expire after" in skipped[0]
    assert not any("trying again" in m for m in said)  # refused: no second try


async def test_a_node_whose_registry_hangs_exits_within_its_bound_with_work_in_flight(
    tmp_path: Path,
) -> None:
    took, said = await _shut_down(tmp_path, "hangs")
    assert took < SHUTDOWN_S + SLACK_S, said[-10:]
    failed = [m for m in said if m.startswith("deregistration failed after")]
    assert len(failed) == 1 and "heartbeats expire after" in failed[0], said[-10:]
