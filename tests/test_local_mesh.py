"""LocalMesh's stop: node first, SIGTERM, SIGKILL only after a grace the node's own
shutdown bound fits in (``LLM_MESH_NODE_SHUTDOWN_S``)."""

from __future__ import annotations

import io
import signal
import subprocess
from pathlib import Path
from typing import Any

from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import STOP_GRACE_S, LocalMesh, _Child


class _Proc:
    def __init__(self, name: str, seen: list[tuple[str, Any]]) -> None:
        self.name, self.seen, self.code = name, seen, None

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.seen.append((self.name, sig))

    def wait(self, timeout: float | None = None) -> int:
        self.seen.append((self.name, timeout))
        self.code = 0
        return 0


def _stop(settings: Settings, tmp_path: Path, **kw: Any) -> list[tuple[str, Any]]:
    mesh = LocalMesh(settings)
    seen: list[tuple[str, Any]] = []
    for name in ("registry", "node"):
        proc: subprocess.Popen[bytes] = _Proc(name, seen)  # type: ignore[assignment]
        mesh._children.append(_Child(name, proc, tmp_path / f"{name}.log", io.BytesIO()))
    mesh.stop(**kw)
    return seen


def test_the_node_stops_first_and_gets_15_s(tmp_path: Path) -> None:
    seen = _stop(Settings(home=tmp_path), tmp_path)
    assert seen == [
        ("node", signal.SIGTERM), ("node", STOP_GRACE_S),
        ("registry", signal.SIGTERM), ("registry", STOP_GRACE_S),
    ]  # fmt: skip
    assert Settings(home=tmp_path).node_shutdown_s + 3.0 <= STOP_GRACE_S  # the default fits


def test_a_longer_node_shutdown_gets_a_longer_grace_and_reaches_the_node(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, node_shutdown_s=40.0)
    seen = _stop(settings, tmp_path)
    assert ("node", 43.0) in seen
    assert LocalMesh(settings)._env()["LLM_MESH_NODE_SHUTDOWN_S"] == "40.0"
    assert ("node", 5.0) in _stop(settings, tmp_path, grace_s=5.0)  # given: as given
