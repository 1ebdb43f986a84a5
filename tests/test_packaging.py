"""pyproject.toml in the form current setuptools builds without a deprecation."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_license_is_an_spdx_expression_setuptools_can_read() -> None:
    """Found 2026-12-03: `license = { text = "MIT" }` made every `make demo` / `make test`
    install print setuptools' BuildBackendWarning (twice), saying that from 2027-02-18 such
    builds are no longer supported. PEP 639's string form needs setuptools >= 77."""
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "MIT"
    requires = data["build-system"]["requires"]
    pins = [r for r in requires if re.match(r"setuptools\s*>=", r)]
    assert len(pins) == 1, requires
    minimum = tuple(int(x) for x in pins[0].split(">=", 1)[1].strip().split("."))
    assert minimum >= (77,), pins[0]


def _floor(requirements: list[str], name: str) -> tuple[int, ...] | None:
    for r in requirements:
        m = re.fullmatch(rf"{name}\s*>=\s*([0-9.]+)", r.split(";")[0].strip())
        if m:
            return tuple(int(x) for x in m.group(1).split("."))
    return None


def test_starlette_is_new_enough_for_state_read_by_key() -> None:
    """Found 2026-12-07 (review45): perf45 reads ``request.app.state["pipeline"]`` (the
    gateway's every request), which Starlette's ``State`` allows from 0.52 (it became a
    ``Mapping``; before, a ``TypeError``: a 500 each), while the dependencies allowed any
    Starlette ``fastapi>=0.115`` brings (0.40 and up)."""
    package = PYPROJECT.parent / "LLM_Mesh"
    by_key = [p for p in package.rglob("*.py") if re.search(r"\.state\[", p.read_text())]
    if not by_key:
        return  # nothing reads a State by key: no floor needed
    floor = _floor(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"], "starlette")
    assert floor is not None and floor >= (0, 52), (floor, by_key)
