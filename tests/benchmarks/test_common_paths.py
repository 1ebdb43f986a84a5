"""``benchmarks/_common.tree_pythonpath``: a benchmark's child process runs the package from
the tree it was given, and keeps the dependencies carried on ``PYTHONPATH`` (a machine whose
dependencies were installed with ``pip --target``, as ``benchmarks/many_cores.sh`` does)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("_common", _DIR / "_common.py")
assert _spec is not None and _spec.loader is not None
common = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("_common", common)
_spec.loader.exec_module(common)


def _tree(root: Path, name: str) -> Path:
    (root / name / "LLM_Mesh").mkdir(parents=True)
    (root / name / "LLM_Mesh" / "__init__.py").write_text("")
    return root / name


def test_the_tree_comes_first_and_carried_dependencies_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = _tree(tmp_path, "here"), _tree(tmp_path, "there")
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(here), ""]))
    got = common.tree_pythonpath(there).split(os.pathsep)
    assert got == [str(there.resolve()), str(site)]  # the other checkout is left out


def test_no_pythonpath_gives_the_tree_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    tree = _tree(tmp_path, "t")
    assert common.tree_pythonpath(tree) == str(tree.resolve())
