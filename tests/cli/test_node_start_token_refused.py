"""``node start`` whose operator token the registry does not know exits 78 (EX_CONFIG) with
the registry's words, which the setup script's unit names in ``RestartPreventExitStatus=``:
found 2026-12-05 (polish32): the node retried its registration for ever, and any other
non-zero status would be restarted by ``Restart=on-failure`` every 10 s."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import LLM_Mesh.node_manager as nm
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import RegistrationRefused


def test_an_unknown_token_exits_78_saying_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refused(self: nm.NodeManager) -> None:
        raise RegistrationRefused("registration refused: HTTP 401 unknown operator token")

    monkeypatch.setattr(nm.NodeManager, "run", refused)
    env = {"LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_OPERATOR_TOKEN": "lmo_x"}
    out = CliRunner().invoke(
        app, ["node", "start", "--engine", "sim", "--registry", "http://127.0.0.1:9"], env=env
    )
    assert out.exit_code == 78, out.output
    assert "unknown operator token" in out.output
