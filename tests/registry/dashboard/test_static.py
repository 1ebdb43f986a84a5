"""The dashboard's assets ship in the package: vendored uPlot pinned with its licence,
every asset a page names exists, and nothing is loaded from elsewhere."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import LLM_Mesh.registry.dashboard as dashboard

HERE = Path(dashboard.__file__).parent
STATIC = HERE / "static"
ROOT = Path(__file__).resolve().parents[3]

PINNED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


def test_vendored_files_are_the_ones_recorded_with_their_licence() -> None:
    for name, digest in PINNED.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    licence = (STATIC / "uPlot.LICENSE").read_text()
    assert "MIT License" in licence and "Leon Sorokin" in licence
    assert "1.6.32" in (STATIC / "VENDORED.md").read_text()


def test_every_asset_a_template_names_exists() -> None:
    named: set[str] = set()
    for tpl in (HERE / "templates").glob("*.html"):
        text = tpl.read_text()
        named.update(re.findall(r"\{\{ static \}\}/([\w.-]+)", text))
        named.update(re.findall(r'scripts=\["([\w.-]+)"\]', text))
    for py in HERE.glob("*.py"):
        named.update(re.findall(r'scripts=\["([\w.-]+)"\]', py.read_text()))
    assert {"dashboard.css", "dashboard.js", "uPlot.iife.min.js", "ledger.js"} <= named
    for name in named:
        assert (STATIC / name).is_file(), name


def test_no_script_loads_anything_from_elsewhere() -> None:
    for js in STATIC.glob("*.js"):
        if js.name.startswith("uPlot"):
            continue
        text = js.read_text()
        assert "http://" not in text and "https://" not in text, js.name
        assert "innerHTML" not in text and "eval(" not in text and "new Function" not in text


def test_the_package_data_carries_templates_and_static_files() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = cfg["tool"]["setuptools"]["package-data"]["LLM_Mesh"]
    assert "registry/dashboard/templates/*.html" in data
    assert "registry/dashboard/static/*" in data
    deps = " ".join(cfg["project"]["dependencies"])
    assert "jinja2" in deps
