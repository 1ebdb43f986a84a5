"""``llm-mesh registry canary run`` sends ``$LLM_MESH_HOME/admin.key`` only to the registry
that made it (found 2026-12-03: to whatever ``--registry`` / ``LLM_MESH_REGISTRY_URL``
named); ``LLM_MESH_ADMIN_KEY`` goes where configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import LLM_Mesh.client
from LLM_Mesh.cli.main import app
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE

runner = CliRunner()
LOCAL_KEY = "local-mesh-admin-key-0123456789"
REGISTRY_KEY = "A" * 43  # recorded beside the URLs: the key the registry must prove it holds


class Recorder:
    """MeshClient's stand-in: which admin key went to which URLs."""

    sent: ClassVar[list[tuple[Any, str | None]]] = []
    holders: ClassVar[list[str | None]] = []  # the registry key each must prove it holds

    def __init__(
        self, urls: Any, *, admin_key: str | None = None, admin_registry_key: str | None = None,
        **_kw: Any,
    ) -> None:  # fmt: skip
        self.sent.append((urls, admin_key))
        self.holders.append(admin_registry_key)

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def canary_run(self, node: str | None, model: str | None) -> list[Any]:
        return []


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str,
    recorded: str = "http://127.0.0.1:8800", **env: str,
) -> Any:  # fmt: skip
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "admin.key").write_text(LOCAL_KEY + "\n")
    (home / ADMIN_KEY_REGISTRY_FILE).write_text(f"{recorded}\nkey={REGISTRY_KEY}\n")
    Recorder.sent, Recorder.holders = [], []
    monkeypatch.setattr(LLM_Mesh.client, "MeshClient", Recorder)
    return runner.invoke(
        app,
        ["registry", "canary", "run", *args, "--home", str(home)],
        env={"COLUMNS": "200", **env},
    )


def test_the_local_key_file_is_not_sent_to_another_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run(tmp_path, monkeypatch, "--registry", "https://gateway.evil.example")
    assert out.exit_code == 1
    assert "LLM_MESH_ADMIN_KEY" in out.output
    assert LOCAL_KEY not in out.output
    assert Recorder.sent == []


def test_the_local_key_file_goes_to_its_own_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run(tmp_path, monkeypatch)  # the default URL: the one `llm-mesh up` recorded
    assert out.exit_code == 0, out.output
    assert [key for _, key in Recorder.sent] == [LOCAL_KEY]
    assert Recorder.holders == [REGISTRY_KEY]  # once it proved it (tests/test_admin_proof.py)


def test_an_explicit_admin_key_goes_to_the_named_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        "--registry",
        "https://mesh.example",
        LLM_MESH_ADMIN_KEY="explicit-admin-key",
    )
    assert out.exit_code == 0, out.output
    assert Recorder.sent == [(("https://mesh.example",), "explicit-admin-key")]
    assert Recorder.holders == [None]  # the user's explicit choice: no proof asked


def test_a_home_whose_mesh_runs_on_another_port_names_that_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-07 (newuser44): after ``llm-mesh up --registry-port 18544``, ``canary
    run`` in its home without ``--registry`` went to the default :8800 and said only to set
    LLM_MESH_ADMIN_KEY; it names the registry the home's key is for and how to reach it."""
    out = run(tmp_path, monkeypatch, recorded="http://127.0.0.1:18544")
    assert out.exit_code == 1
    said = " ".join(out.output.split())
    assert "this home's admin.key is for the registry at http://127.0.0.1:18544" in said, said
    assert "not http://127.0.0.1:8800" in said and "--registry http://127.0.0.1:18544" in said
    assert "LLM_MESH_ADMIN_KEY" in said  # for the :8800 one, as before
    assert LOCAL_KEY not in out.output and Recorder.sent == []  # nothing sent, as before
