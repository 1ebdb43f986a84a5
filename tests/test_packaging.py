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
