"""What the docs name inside a module exists there, and no page holds a merge's conflict.

Walked on 2026-12-06 (docs35): docs/ARCHITECTURE.md held two unresolved merge conflicts
(``<<<<<<< HEAD`` ... ``>>>>>>> canarystore35``: tidy35's memory-store pruning against
canarystore35's canary tallies, each side half true), and docs/security.md named
``distributed_models._tokens``, which had moved to ``model_response.py``. Paths, tests and
endpoints are tests/test_docs_names.py's; options and variables
tests/cli/test_docs_options.py's.

A ``module.name`` span (``held.clear_and_release``, ``core/retention.node_quiet``,
``LLM_Mesh/registry/admin.CredentialTries``) names a module of the package by its file name
(with its folder, if written) and something defined in it: a function or class (at any
depth: a method written ``module.method`` passes), a name assigned or imported at its top
or in a class, or an attribute set on ``self``. A ``Class.name`` span, for a class of the
package, names a member of it or of a base class of the package.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache

from tests.test_docs_names import PAGES, REPO

PACKAGE = REPO / "LLM_Mesh"
CHECKED = [*PAGES, "docs/security.md"]
# spans of docs/security.md's history that say what was (or what another library names)
NOT_OURS = {
    "slot_wait.key_cap",  # "`key_cap`, `kept_for_new` and their tests are gone"
    "slot_wait.kept_for_new",
    "prompt.str",  # pydantic's location words in an old 400
    "client.get",  # an httpx client's method, in a row of what was
}
# a file's name, not a symbol (``LLM_Mesh/core/limits.py``, ``node.toml``)
FILE_TYPES = {"py", "md", "toml", "json", "sh", "txt", "yml", "yaml", "html", "css", "js"}
FILE_TYPES |= {"cfg", "ini", "service", "db", "gguf", "key", "pem", "csv", "gz", "svg"}
_SPAN = re.compile(r"`([^`\s]+)`")
_MODULE_ATTR = re.compile(
    r"(?:LLM_Mesh/)?((?:[a-z_]+/)*)([a-z_][a-z0-9_]*)\.([A-Za-z_]\w*)(?:\(\))?"
)
_CLASS_ATTR = re.compile(r"(?:[\w/]+[./])?([A-Z][A-Za-z0-9]*)\.([a-z_]\w*)(?:\(\))?")
_CONFLICT = re.compile(r"(?m)^(?:<{7} |>{7} |={7}$)")


def defined(tree: ast.AST) -> tuple[set[str], dict[str, tuple[set[str], list[str]]]]:
    """A module's names (see the docstring) and its classes: name → (members, bases)."""
    names: set[str] = set()
    classes: dict[str, tuple[set[str], list[str]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif _on_self(node):
            names.add(node.attr)  # type: ignore[attr-defined]
        if isinstance(node, ast.ClassDef):
            members = {n for child in node.body for n in _targets(child)}
            members |= {
                a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute) and _on_self(a)
            }
            bases = [
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            ]
            classes[node.name] = (members, bases)
    body = getattr(tree, "body", [])
    names |= {n for child in body for n in _targets(child)}
    names |= {n for c in classes.values() for n in c[0]}
    return names, classes


def _on_self(node: ast.AST) -> bool:
    """``self.name = ...``'s target."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _targets(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Assign):
        return {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


@cache
def _package() -> tuple[
    dict[str, list[tuple[str, set[str]]]], dict[str, list[tuple[set[str], list[str]]]], str
]:
    """Modules by file stem (their folder and names), classes by name, the source text."""
    modules: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    classes: dict[str, list[tuple[set[str], list[str]]]] = defaultdict(list)
    text = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        text.append(source)
        names, own = defined(ast.parse(source))
        modules[path.stem].append((path.parent.relative_to(PACKAGE).as_posix(), names))
        for name, c in own.items():
            classes[name].append(c)
    return modules, classes, "\n".join(text)


def _members(name: str, seen: frozenset[str] = frozenset()) -> set[str] | None:
    """A class's members with its package bases'; ``None`` when a base is another library's
    (its members unknown here)."""
    _, classes, _ = _package()
    out: set[str] = set()
    for members, bases in classes[name]:
        out |= members
        for base in bases:
            if base in classes and base not in seen:
                more = _members(base, seen | {name})
                if more is None:
                    return None
                out |= more
            elif base not in ("object", "Protocol", "Generic", "Exception", "ValueError"):
                return None
    return out


def unknown_symbols(text: str) -> list[str]:
    """The ``module.name`` and ``Class.name`` spans of ``text`` that name nothing there; a
    span the package writes as a text (a file name: ``settlement.lock``) is no symbol."""
    modules, classes, source = _package()
    bad = []
    for span in sorted(set(_SPAN.findall(text)) - NOT_OURS):
        if (m := _MODULE_ATTR.fullmatch(span)) is not None:
            folder, stem, attr = m.groups()
            if attr in FILE_TYPES:
                continue
            found = [n for f, n in modules.get(stem, []) if f.endswith(folder.rstrip("/"))]
            quoted = re.search(rf"[\"'`]{re.escape(span)}[\"'`]", source)  # a file's name
            if found and not any(attr in n for n in found) and not quoted:
                bad.append(span)
        elif (m := _CLASS_ATTR.fullmatch(span)) is not None and m.group(1) in classes:
            members = _members(m.group(1))
            if members is not None and m.group(2) not in members:
                bad.append(span)
    return bad


def test_the_symbol_check_finds_a_missing_one() -> None:
    text = "`held.clear_and_release`, `core/retention.node_quiet`, `admin.CredentialTries`, "
    text += "`LLM_Mesh/registry/admin.WRONG_ADMIN_KEYS_PER_MIN`, `Quality.clear`, `node.key`, "
    text += "`settlement.lock`, `CredentialTries.before`, `model_response._tokens`, "
    # the real error of 2026-12-06, a module's name in the wrong folder, a missing method
    text += "`distributed_models._tokens`, `node/retention.node_quiet`, `Quality.forget`"
    assert unknown_symbols(text) == ["Quality.forget", "distributed_models._tokens"]
    # ``node/retention`` is no module: nothing to check it against (the path check's part)
    assert unknown_symbols("`core/retention.nope`") == ["core/retention.nope"]


def test_every_symbol_the_docs_name_in_a_module_exists() -> None:
    for page in CHECKED:
        assert (page, unknown_symbols((REPO / page).read_text())) == (page, [])


def conflicts(text: str) -> list[int]:
    """The lines (1-based) of ``text`` that are a merge's conflict markers."""
    return [text.count("\n", 0, m.start()) + 1 for m in _CONFLICT.finditer(text)]


def test_the_conflict_check_finds_a_marker() -> None:
    text = "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> branch\n`=======` and ======= inline\n"
    assert conflicts(text) == [2, 4, 6]


def test_no_page_or_module_holds_a_merge_conflict() -> None:
    files = [*REPO.glob("docs/*.md"), REPO / "README.md", *PACKAGE.rglob("*.py")]
    files += [*(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    for path in files:
        found = conflicts(path.read_text(errors="replace"))
        assert (path.relative_to(REPO).as_posix(), found) == (path.relative_to(REPO).as_posix(), [])
