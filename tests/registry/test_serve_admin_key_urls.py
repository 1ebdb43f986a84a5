"""``registry serve --port N`` records, beside ``admin.key``, the URL it serves on as well as
``LLM_MESH_REGISTRY_URL``'s (found 2026-12-03, review: only the latter, the default
``http://127.0.0.1:8800`` when unset, so the operator's ``canary run --registry
http://127.0.0.1:N`` was refused the home's key, and the key was meant for port 8800)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from LLM_Mesh import heap
from LLM_Mesh.config import Settings
from LLM_Mesh.core.admin_key_scope import file_key_may_go
from LLM_Mesh.registry import app as registry_app
from LLM_Mesh.registry import stop_watchdog
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE
from tests.ports import free_port


def _free_port() -> int:
    return free_port()


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1"),
                                           ("0.0.0.0", "http://127.0.0.1")])  # fmt: skip
def test_the_served_url_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, url: str
) -> None:
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL", raising=False)
    monkeypatch.setattr(heap, "cap_arenas", lambda _n: None)  # no mallopt in the test process
    started: list[Any] = []

    def run(app: Any, bound_s: float, **config: Any) -> None:
        with TestClient(app):  # the lifespan: start-up records the URLs, then stops
            started.append(app)

    monkeypatch.setattr(stop_watchdog, "run_bounded", run)
    port = _free_port()
    registry_app.serve(Settings(home=tmp_path), host=host, port=port)
    assert started
    recorded = (tmp_path / ADMIN_KEY_REGISTRY_FILE).read_text().split()
    assert file_key_may_go([f"{url}:{port}"], recorded)
    assert file_key_may_go(["http://127.0.0.1:8800"], recorded)  # LLM_MESH_REGISTRY_URL's
    assert not file_key_may_go(["http://127.0.0.1:1"], recorded)
