"""A node whose Python lacks llama-cpp-python says which Python and the command that
installs it there (found 2026-12-05, newuser32: ``run scripts/install-llama-cpp.sh``,
whose default is ``.venv/bin/python`` of the folder it runs in: for a node in
setup-node-operator.sh's venv (``$LLM_MESH_HOME/venv``), or run from another folder, that
installs into another Python or stops with ``no Python at .venv/bin/python``)."""

from __future__ import annotations

import shlex
import sys

import pytest

from LLM_Mesh.errors import EngineError
from LLM_Mesh.node.engines import llama_cpp


def test_the_hint_names_this_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp: ImportError
    with pytest.raises(EngineError) as missing:
        llama_cpp._default_factory(model_path="x.gguf")
    said = str(missing.value)
    assert f"scripts/install-llama-cpp.sh {shlex.quote(sys.executable)}" in said, said
    assert "llama-cpp-python is not installed" in said, said
