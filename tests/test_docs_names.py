"""What the docs name exists, and what the code has the docs name: docs/ARCHITECTURE.md names
every package module, every endpoint served and every store migration; the paths, tests and
endpoints the operator and design docs cite are there; README's node.toml example holds
`NodeConfig`'s keys.

Walked on 2026-12-06 (docs33): `LLM_Mesh/node/hardware.py` (what `setup-node-operator.sh`
runs before any venv exists) was named nowhere in docs/ARCHITECTURE.md, and its "Store"
listed the migrations to 0024 of 0026. Options and variables are
tests/cli/test_docs_options.py's; metrics tests/test_docs_metrics.py's and
tests/test_grafana_dashboard.py's.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.tlog_witness import ADD_CHECKPOINT
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.dashboard import _routes as dashboard_routes
from LLM_Mesh.registry.memory_store import MemoryStore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "LLM_Mesh"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
PAGES = ["docs/ARCHITECTURE.md", "README.md", "docs/operations.md", "docs/deploy.md"]
PAGES += ["docs/dashboard.md", "docs/simulator.md", "docs/testing.md"]
# a test the docs name in a history line, said there to be replaced since
REPLACED = {"tests/core/test_limits.py::test_a_1_mib_body_is_judged_fast"}
# README's example of a path the gateway has no endpoint for (404, `SERVED` named)
NOT_SERVED = {"/v1/embeddings"}

_SPAN = re.compile(r"`([^`\s]+)`")


def _blocks(text: str) -> list[set[str]]:
    """The spans of each paragraph and of each table row (its own block)."""
    return [set(_SPAN.findall(b)) for b in re.split(r"\n\s*\n|\n(?=\|)", text)]


def unnamed_modules(text: str, modules: list[str]) -> list[str]:
    """Modules (paths under ``LLM_Mesh/``) the text does not name. Named: its path (or a
    path ending in it) as a span; its file name as a span in a paragraph or table row that
    names its folder (``LLM_Mesh/registry/``, or a module there); a file name no other
    module has, anywhere. A package's ``__init__.py``: its folder named; a migration:
    ``migrations/`` named."""
    spans = set(_SPAN.findall(text))
    blocks = _blocks(text)
    names = [m.rsplit("/", 1)[-1] for m in modules]
    missing = []
    for module, name in zip(modules, names, strict=True):
        folder = module.rsplit("/", 1)[0] if "/" in module else ""
        if name == "__init__.py":
            last = folder.rsplit("/", 1)[-1]
            ok = {f"LLM_Mesh/{folder}/", f"{folder}/", f"{last}/"} & spans if folder else True
        elif "/migrations/versions/" in module:
            ok = "migrations/" in spans
        else:
            ok = (
                any(s == module or s.endswith("/" + module) for s in spans)
                or any(
                    name in b and any(s.startswith(f"LLM_Mesh/{folder}/") for s in b)
                    for b in blocks
                )
                or (names.count(name) == 1 and name in spans)
            )
        if not ok:
            missing.append(module)
    return missing


def package_modules() -> list[str]:
    found = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    return [m for m in found if not m.endswith("__main__.py") and m != "registry/migrations/env.py"]


def test_the_module_check_finds_an_unnamed_one() -> None:
    modules = ["core/a.py", "core/b.py", "node/a.py", "node/b.py", "node/__init__.py"]
    modules += ["registry/c.py", "registry/d.py"]
    text = "| `LLM_Mesh/core/a.py`, `b.py` | x |\n| `LLM_Mesh/node/` | `b.py` |\n\n"
    text += "Decisions in `LLM_Mesh/registry/`: `c.py`.\n\n`d.py` alone"
    # node/a.py: `a.py` is named for core only; d.py: a name no other module has
    assert unnamed_modules(text, modules) == ["node/a.py"]
    assert unnamed_modules("`core/a.py` `node/a.py`", ["core/a.py", "node/a.py"]) == []
    assert "node/hardware.py" in package_modules() and "cli/__main__.py" not in package_modules()


def test_architecture_names_every_package_module() -> None:
    assert unnamed_modules(ARCHITECTURE.read_text(), package_modules()) == []


def _tracked() -> tuple[set[str], set[str]]:
    files = {
        p.relative_to(REPO).as_posix()
        for top in ("LLM_Mesh", "tests", "benchmarks", "scripts", "docs")
        for p in (REPO / top).rglob("*")
        if "__pycache__" not in p.parts
    }
    return files, {f.rsplit("/", 1)[0] for f in files} | {"LLM_Mesh", "tests", "docs"}


_PATH = re.compile(r"`((?:LLM_Mesh|tests|benchmarks|scripts|docs)/[\w/.-]*)(?:::(\w+))?`")


def missing_paths(text: str, files: set[str], folders: set[str]) -> list[str]:
    """``LLM_Mesh/...``, ``tests/...`` (and ``::test_name``), ``benchmarks/...``, ``scripts/...``,
    ``docs/...`` spans that name nothing; a placeholder (``MODULE``) is no path."""
    bad = []
    for path, name in _PATH.findall(text):
        bare = path.rstrip("/")
        if re.search(r"/[A-Z_]+(?:\.py)?$", bare) or re.search(r"_[A-Z]+\.py$", bare):
            continue  # LLM_Mesh/core/MODULE.py, tests/core/test_MODULE.py
        if bare not in files and bare not in folders:
            bad.append(path)
        elif name and f"{bare}::{name}" not in REPLACED:
            source = (REPO / bare).read_text()
            if not re.search(rf"(?m)^\s*(?:async )?def {name}\b|^class {name}\b", source):
                bad.append(f"{path}::{name}")
    return bad


def test_the_path_check_finds_a_missing_one() -> None:
    files = {"tests/x/test_y.py", "LLM_Mesh/a.py"}
    folders = {"tests/x", "tests", "LLM_Mesh"}
    text = "`tests/x/test_y.py` `tests/x/` `LLM_Mesh/b.py` `tests/core/test_MODULE.py`"
    assert missing_paths(text, files, folders) == ["LLM_Mesh/b.py"]
    files, folders = _tracked()
    one = "tests/test_docs_names.py"
    assert missing_paths(f"`{one}::test_the_path_check_finds_a_missing_one`", files, folders) == []
    assert missing_paths(f"`{one}::test_nothing`", files, folders) == [f"{one}::test_nothing"]


def test_every_path_and_test_the_docs_cite_exists() -> None:
    files, folders = _tracked()
    for page in PAGES:
        assert (page, missing_paths((REPO / page).read_text(), files, folders)) == (page, [])


def _served(app: object, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for route in getattr(app, "routes", []):
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            paths |= _served(inner, prefix)
            continue
        path = getattr(route, "path", None)
        if path is not None:
            paths.add(prefix + path)
    return paths


def served_paths(tmp: Path) -> set[str]:
    """The registry's routes (with its dashboard's), a node's and a witness's, ``{...}``
    parameters as ``{}``."""
    app = create_registry_app(Settings.from_env({"LLM_MESH_HOME": str(tmp)}), store=MemoryStore())
    paths = _served(app) | {"/dashboard" + getattr(r, "path", "") for r in dashboard_routes()}
    paths |= {"/mesh/health", "/mesh/info", "/mesh/earnings", "/mesh/admin/{action}"}  # node
    paths |= {ADD_CHECKPOINT}
    return {re.sub(r"\{[^}]*\}", "{}", p.rstrip("/") or "/") for p in paths}


_ENDPOINT = re.compile(
    r"(?:GET|POST|DELETE|HEAD) (/[\w/]*/\.\.\.|/[\w{}./:-]*[\w}])"
    r"|`(/(?:v1|mesh|dashboard)/[\w{}/.:-]*[\w}])`"
)


def unserved(text: str, served: set[str]) -> list[str]:
    """``GET /path`` and ``/v1/...``, ``/mesh/...``, ``/dashboard/...`` spans that no app
    serves; a segment in capitals or ``<...>`` is a parameter, ``PAGE`` any page."""
    bad = []
    for m in _ENDPOINT.finditer(text):
        path = (m.group(1) or m.group(2)).split("?")[0]
        shape = re.sub(r"\{[^}]*\}|<[^>]*>|\b[A-Z][A-Z_]+\b|\.\.\.", "{}", path)
        if shape.startswith(("/dashboard/static", "/docs/static")) or path in NOT_SERVED:
            continue
        asked = re.escape(shape).replace(r"\{\}", "[^/]+")
        if not any(
            re.fullmatch(re.escape(p).replace(r"\{\}", "[^/]+"), shape)
            or re.fullmatch(asked, p.replace("{}", "x"))
            for p in served
        ):
            bad.append(path)
    return bad


def test_the_endpoint_check_finds_a_missing_one(tmp_path: Path) -> None:
    served = served_paths(tmp_path)
    assert {"/v1/chat/completions", "/mesh/nodes/{}/heartbeat", "/dashboard/api/verify"} <= served
    text = "`GET /v1/ledger/keys`, `/mesh/nodes/NODE_ID`, POST /mesh/admin/pause, GET /v1/nope, `/mesh/x`"
    text += ", every `POST /v1/...` request"
    assert unserved(text, served) == ["/v1/nope", "/mesh/x"]


def test_every_endpoint_the_docs_name_is_served(tmp_path: Path) -> None:
    served = served_paths(tmp_path)
    for page in PAGES:
        assert (page, unserved((REPO / page).read_text(), served)) == (page, [])


def unlisted_migrations(text: str, revisions: list[str]) -> list[str]:
    """Revisions the "Store" section's list of tables by migration leaves out, and the last
    one its chain ("0001 to NNNN") does not end at."""
    store = text.split("\n## Store\n", 1)[1].split("\n## ", 1)[0]
    chain = re.search(r"one chain, (\d{4}) to (\d{4})", store)
    missing = [r for r in revisions if not re.search(rf"\b{r}\b", store)]
    if chain is None or chain.group(2) != revisions[-1]:
        missing.append(f"chain to {revisions[-1]}")
    return missing


def test_the_store_section_lists_every_migration() -> None:
    """Found 2026-12-06 (docs33): the list stopped at 0024, "one chain, 0001 to 0024", while
    0025 (`nodes.keyed_at`) and 0026 (the usage audit's tables) made tables too."""
    versions = PACKAGE / "registry" / "migrations" / "versions"
    revisions = sorted(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert revisions[:2] == ["0001", "0002"] and len(revisions) >= 26
    text = "\n## Store\n\n(one chain, 0001 to 0003): `a` since 0001, `b` since 0003\n## Next\n0002"
    assert unlisted_migrations(text, ["0001", "0002", "0003"]) == ["0002"]
    assert unlisted_migrations(text, ["0001", "0003", "0004"]) == ["0004", "chain to 0004"]
    assert unlisted_migrations(ARCHITECTURE.read_text(), revisions) == []


def undocumented(text: str, served: set[str]) -> list[str]:
    """Served paths (``/v1``, ``/mesh`` and the others outside the dashboard's own pages and
    static files) the text never names; a parameter may be written ``{id}``, ``ID``, ``<id>``
    or as an example value (``/mesh/admin/pause``)."""
    missing = []
    for path in sorted(served):
        if path.startswith(("/dashboard/", "/docs/static")):
            continue
        pattern = re.escape(path).replace(r"\{\}", r"(?:\{[^}]*\}|[A-Z_]+|<[^>]*>|[a-z_|-]+)")
        if not re.search(pattern + r"(?![\w/])", text):
            missing.append(path)
    return missing


def test_architecture_names_every_endpoint(tmp_path: Path) -> None:
    served = served_paths(tmp_path)
    text = "`POST /mesh/nodes/{id}/heartbeat`, `GET /v1/ledger` and `/mesh/admin/pause`"
    assert undocumented(text, {"/mesh/nodes/{}/heartbeat", "/v1/ledger", "/mesh/admin/{}"}) == []
    assert undocumented(text, {"/v1/ledger/keys", "/mesh/nodes", "/dashboard/api/x"}) == [
        "/mesh/nodes",
        "/v1/ledger/keys",
    ]
    assert undocumented(ARCHITECTURE.read_text(), served) == []


def test_readme_node_toml_names_every_key_and_only_keys() -> None:
    """README's node.toml example parses, holds only `NodeConfig`'s fields, and names every
    one but `node_id` (ignored, README says so) in a key or its comments."""
    section = (REPO / "README.md").read_text().split("### node.toml", 1)[1]
    block = section.split("```toml", 1)[1].split("```", 1)[0]
    fields = {f.name for f in dataclasses.fields(NodeConfig)}
    assert sorted(set(tomllib.loads(block)) - fields) == []
    named = {f for f in fields if re.search(rf"\b{f}\b", block)}
    assert sorted(fields - named) == ["node_id"]


def test_no_merge_conflict_markers() -> None:
    """No file of the docs, the package or the tests holds a merge's conflict markers.
    Failed before (found 2026-12-06, review35b): docs/ARCHITECTURE.md kept tidy35's and
    canarystore35's sides of two paragraphs on node row retention between ``<<<<<<< HEAD``
    and ``>>>>>>> canarystore35``."""
    marker = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.M)
    files = [*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md"), *PACKAGE.rglob("*.py")]
    files += [*(REPO / "tests").rglob("*.py")]
    found = [f"{p.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}"
             for p in files for text in [p.read_text(encoding="utf-8")]
             for m in marker.finditer(text)]  # fmt: skip
    assert not found, found
