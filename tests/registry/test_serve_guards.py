"""``registry serve`` runs uvicorn with the guards against clients that hold its resources
(``slow_clients.py``): the slow consumer's write stall bound, and a soft limit of open files
raised towards 65,536, so that idle connections from one client (each held up to the read
timeout) do not take every file descriptor (found 2026-12-05: with the usual soft limit, ~35
connections a second; a registry at 256 answered nothing more with 300 open). docs/security.md,
"Request limits"."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.slow_clients import WRITE_STALL_S
from tests.ports import free_port


def test_serve_raises_the_file_limit_and_bounds_write_stalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import LLM_Mesh.registry.stop_watchdog as watchdog
    from LLM_Mesh.registry.app import serve

    given: dict[str, object] = {}
    monkeypatch.setattr(watchdog, "run_bounded", lambda app, budget, **kw: given.update(kw))
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = before[1]
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        serve(Settings(home=tmp_path / "home"), port=free_port())
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    assert soft == want  # before: 256, what the process was started with
    protocol = given["http"]
    assert protocol.write_stall_s == WRITE_STALL_S  # type: ignore[attr-defined]
