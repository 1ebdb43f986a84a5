"""Receipts kept on disk (``LLM_Mesh/receipt_files.py``) and the seed API's opt-in.

The seed API (``distributed_models``, ``mesh_manager``) keeps a keyed answer's receipt in
the key's folder only when asked (``LLM_MESH_SAVE_RECEIPTS=1`` or ``keep_receipts=True``):
a library writing into the home unasked would surprise. The seed's snippets run as written
(``get_model_response(...)``, ``mesh_manager.handle_task(...)``) against the real registry
and a SIMULATED sim node in process (``tests/inprocess_mesh.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
from pathlib import Path

import pytest

import LLM_Mesh.distributed_models as dm
import LLM_Mesh.mesh_manager as mm
from LLM_Mesh.core.key_account import key_tag
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.receipt_files import SAVE_ENV, keeps, key_folder, save_receipt
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

MODEL = "gemma-3-270m"


def test_the_key_folder_is_a_tag_of_the_key_never_the_key(tmp_path: Path) -> None:
    a, b = key_folder(tmp_path, "mesh-sk-aaa"), key_folder(tmp_path, "mesh-sk-bbb")
    assert a != b and a.parent == b.parent == tmp_path / "receipts"
    assert "aaa" not in a.name and a.name == key_tag("mesh-sk-aaa")[:24]


@pytest.mark.parametrize(
    ("choice", "env", "kept"),
    [(None, "", False), (None, "1", True), (None, "yes", True), (None, "0", False),
     (False, "1", False), (True, "", True)],
)  # fmt: skip
def test_the_library_keeps_only_when_asked(choice: bool | None, env: str, kept: bool) -> None:
    assert keeps(choice, {SAVE_ENV: env}) is kept


def test_a_missing_folder_and_its_parents_are_made_0700(tmp_path: Path) -> None:
    path = save_receipt(tmp_path / "home" / "receipts" / "k", {"mesh": {"receipt": {}}})
    for d in (tmp_path / "home", tmp_path / "home" / "receipts", path.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def keyed(inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A keyed user of the in-process mesh (a grant), the seed's module-level registry its."""
    inprocess_mesh.add_node(MODEL)
    made = inprocess_mesh.call(create_api_key(inprocess_mesh.store, name="seed"))
    assert made is not None and inprocess_mesh.app is not None
    ledger = inprocess_mesh.app.state.runtime.ledger
    inprocess_mesh.call(
        ledger.append_one(Transfer("grant", MINT, user_account(made[1].key_id), 10**6))
    )
    settings = dataclasses.replace(inprocess_mesh.settings, home=tmp_path / "home", api_key=made[0])
    reg = dm.DistributedModelRegistry(
        settings, registry_url=REGISTRY_URL, http_client=inprocess_mesh.client()
    )
    monkeypatch.setattr(dm, "model_registry", reg)
    monkeypatch.setattr(mm, "mesh_manager", mm.MeshManager(reg))
    monkeypatch.delenv(SAVE_ENV, raising=False)
    return made[0]


def _kept(tmp_path: Path, key: str) -> list[Path]:
    folder = key_folder(tmp_path / "home", key)
    return sorted(folder.iterdir()) if folder.exists() else []


def test_the_seed_api_keeps_nothing_by_default(keyed: str, tmp_path: Path) -> None:
    result = asyncio.run(dm.get_model_response(MODEL, "def fibonacci(n):", task_type="python"))
    assert result.simulated and result.receipt is not None and result.receipt_file is None
    assert not (tmp_path / "home" / "receipts").exists()


def test_the_seed_api_keeps_a_keyed_receipt_when_asked(
    keyed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SAVE_ENV, "1")
    result = asyncio.run(dm.get_model_response(MODEL, "def fibonacci(n):", task_type="python"))
    task = mm.handle_task("debug", {"code": "x = 1/0", "error": "ZeroDivisionError"})
    assert result.simulated and task is not None
    kept = _kept(tmp_path, keyed)
    assert len(kept) == 2 and str(kept[0]) in (result.receipt_file, kept[0].as_posix())
    for f in kept:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        saved = json.loads(f.read_text())
        assert set(saved) == {"mesh"} and "receipt" in saved["mesh"]
        assert "fibonacci" not in f.read_text() and "ZeroDivision" not in f.read_text()
    assert json.loads(Path(str(result.receipt_file)).read_text())["mesh"] == result.receipt["mesh"]


def test_the_seed_api_keeps_nothing_of_an_anonymous_answer(
    keyed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SAVE_ENV, "1")
    reg = dm.model_registry
    reg._settings = dataclasses.replace(reg._settings, api_key=None)  # type: ignore[type-var]
    result = asyncio.run(dm.get_model_response(MODEL, "def fibonacci(n):", task_type="python"))
    assert result.simulated and result.receipt_file is None
    assert not (tmp_path / "home" / "receipts").exists()


def test_a_failed_keep_warns_and_returns_the_answer(
    keyed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(SAVE_ENV, "1")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "receipts").write_text("")  # a file where the folder goes
    result = asyncio.run(dm.get_model_response(MODEL, "def fibonacci(n):", task_type="python"))
    assert result.text and result.receipt_file is None
    assert "a receipt was not kept" in caplog.text
