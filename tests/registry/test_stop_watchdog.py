"""``registry/stop_watchdog.py`` in process: the watchdog's count, what it logs, its exit
(injected); the subprocess checks are in ``test_stop_watchdog_process.py``."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.registry.stop_watchdog import StopWatchdog


async def _stuck_step(gate: asyncio.Event) -> None:
    await gate.wait()


async def test_past_its_bound_it_logs_what_is_stuck_flushes_and_exits_70(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exited: list[int] = []
    done = threading.Event()

    def _exit(status: int) -> None:
        exited.append(status)
        done.set()

    gate = asyncio.Event()
    task = asyncio.create_task(_stuck_step(gate))
    await asyncio.sleep(0)
    caplog.set_level("WARNING", logger="LLM_Mesh.registry.stop")
    dog = StopWatchdog(0.2, exit=_exit)
    dog.arm(signal.SIGTERM)
    first = dog.thread
    dog.arm(signal.SIGINT)  # a second signal starts no second count
    assert dog.thread is first and first is not None and first.daemon
    assert not done.is_set()
    await asyncio.to_thread(done.wait, 10)
    assert exited == [70]
    [record] = [r for r in caplog.records if r.name == "LLM_Mesh.registry.stop"]
    assert record.levelno == logging.WARNING
    msg = record.getMessage()
    assert "did not stop within 0.2 s of SIGTERM" in msg
    assert "… > asyncio.locks.Event.wait;" in msg, msg  # the stuck task (not this package's)
    gate.set()
    await task


def test_disarmed_in_time_it_exits_nothing() -> None:
    exited: list[int] = []
    dog = StopWatchdog(0.3, exit=exited.append)
    dog.arm(signal.SIGTERM)
    dog.disarm()
    assert dog.thread is not None
    dog.thread.join(5)
    assert not dog.thread.is_alive() and exited == []


def test_a_bound_is_positive_and_the_setting_is_read_with_0_as_off() -> None:
    with pytest.raises(ValueError):
        StopWatchdog(0.0)
    assert Settings.from_env({}).registry_shutdown_s == 80.0
    assert Settings.from_env({"LLM_MESH_REGISTRY_SHUTDOWN_S": "25"}).registry_shutdown_s == 25.0
    assert Settings.from_env({"LLM_MESH_REGISTRY_SHUTDOWN_S": "0"}).registry_shutdown_s == 0.0
    with pytest.raises(ValueError, match="LLM_MESH_REGISTRY_SHUTDOWN_S"):
        Settings.from_env({"LLM_MESH_REGISTRY_SHUTDOWN_S": "-1"})
