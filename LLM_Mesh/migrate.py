"""``llm-mesh migrate``: clear local model files out of a checkout, safely.

The seed's migration guide says ``find . -name "*.bin" -delete``, which would
delete *any* ``.bin`` file. Here model files are found by their first bytes
(GGUF, old GGML, safetensors; see :mod:`LLM_Mesh.core.model_files`), never by
name, and only they are ever deleted.

    plan = scan(root)        # dry run: what would happen (deletes nothing)
    result = apply(plan)     # remove exactly plan's model files, emptied
                             # LLM_Mesh/models/ dirs; complete .gitignore
                             # (in a git checkout only)
    check = verify(root)     # no model file and no file >= 1 GB left

``.git``, virtual environments (``.venv``, any dir holding ``pyvenv.cfg``),
``node_modules`` and a node's own state dir (``.llm-mesh``, or a folder of any name holding
a node's or registry's state, ``STATE_MARKERS``) are never entered; such a folder given as
the one to clean, or one inside its ``models/``, is refused (:func:`refuse_a_home`).
Symlinks are never followed or removed. ``render_plan`` / ``render_apply`` /
``render_verify`` give the text the CLI prints.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from LLM_Mesh.core.model_files import HEAD_BYTES, WeightsFormat, detect_weights_format
from LLM_Mesh.errors import InvalidRequest

GB = 1_000_000_000
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".llm-mesh", ".tox"}
)
# a folder holding one of these is a node's or registry's home ($LLM_MESH_HOME, any name:
# `LLM_MESH_HOME=~/.llm-mesh-node2`, `up --home`) or a node's models folder (the hash cache
# `node models add` and `node start` keep): its model files are what a node serves
STATE_MARKERS = ("node.key", "node.toml", "registry.key", "admin.key", ".sha256-cache.json")
MODELS_TREE = Path("LLM_Mesh") / "models"
GITIGNORE_COMMENT = "# Model files (hosted on network, not in repo)"
GITIGNORE_LINES = ("LLM_Mesh/models/", "*.gguf", "*.bin", "*.safetensors", "models/")
DOC_SUFFIXES = frozenset({".md", ".rst", ".txt"})
DOC_MAX_BYTES = 5_000_000


@dataclass(frozen=True)
class FoundModel:
    path: Path
    size_bytes: int
    format: WeightsFormat


@dataclass(frozen=True)
class DocReference:
    path: Path
    line_no: int
    line: str
    mentions: str  # what it points at: "LLM_Mesh/models/" or a model file's name


@dataclass
class MigrationPlan:
    root: Path
    models: list[FoundModel] = field(default_factory=list)
    dirs_to_remove: list[Path] = field(default_factory=list)  # deepest first
    gitignore_missing: list[str] = field(default_factory=list)  # none outside a git checkout
    doc_references: list[DocReference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    in_git: bool = True  # a git work tree: its .gitignore is completed

    @property
    def total_bytes(self) -> int:
        return sum(m.size_bytes for m in self.models)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.models or self.dirs_to_remove or self.gitignore_missing)


@dataclass
class ApplyResult:
    removed: list[FoundModel] = field(default_factory=list)
    removed_dirs: list[Path] = field(default_factory=list)
    gitignore_added: list[str] = field(default_factory=list)
    doc_references: list[DocReference] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files that changed since the scan

    @property
    def freed_bytes(self) -> int:
        return sum(m.size_bytes for m in self.removed)


@dataclass
class VerifyResult:
    root: Path
    models: list[FoundModel] = field(default_factory=list)
    large_files: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.models and not self.large_files


def _state_marker(d: Path) -> str | None:
    """What makes ``d`` a node's or registry's state folder: a :data:`STATE_MARKERS` file
    in it, or its name ``.llm-mesh``; ``None`` for any other folder."""
    if d.name == ".llm-mesh":
        return "the name .llm-mesh"
    return next((m for m in STATE_MARKERS if (d / m).exists()), None)


def refuse_a_home(root: Path) -> None:
    """``InvalidRequest`` when ``root`` (resolved) is a node's or registry's state folder,
    or inside one's ``models/`` (or anywhere in a ``.llm-mesh``, or in a hashed models
    folder): its model files are what a node serves. A home is left alone below the folder
    scanned (:func:`_walk_files`), and so as the folder itself (found 2026-12-07,
    review41b: ``migrate --apply`` run in ``~/.llm-mesh-node2`` removed its models)."""
    for d in (root, *root.parents):
        marker = _state_marker(d)
        if marker is None:
            continue
        inside = d == root or d.name == ".llm-mesh" or marker == STATE_MARKERS[-1]
        if inside or d / "models" in (root, *root.parents):
            raise InvalidRequest(
                f"migrate: {root} is a node's or registry's state ({d} holds {marker}): "
                "its model files are what a node serves, not a checkout's to clear; "
                "`llm-mesh node models list` shows them"
            )


def _walk_files(root: Path, warnings: list[str] | None = None) -> Iterator[Path]:
    """Regular files under ``root``, not entering skipped dirs, never following links."""

    def onerror(err: OSError) -> None:
        if warnings is not None:
            warnings.append(f"cannot read {err.filename}: {err.strerror}")

    def entered(d: Path) -> bool:
        if d.name in SKIP_DIRS or d.is_symlink() or (d / "pyvenv.cfg").exists():
            return False
        marker = next((m for m in STATE_MARKERS if (d / m).exists()), None)
        served = marker == STATE_MARKERS[-1] or (d / "models").is_dir()  # else: nothing said
        if marker is not None and served and warnings is not None:
            warnings.append(
                f"left alone: {d}/ holds {marker}, a node's or registry's state: "
                "its model files are what a node serves (`llm-mesh node models list`)"
            )
        return marker is None

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if entered(here / d))
        for name in sorted(filenames):
            p = here / name
            if not p.is_symlink() and p.is_file():
                yield p


def identify(path: Path) -> FoundModel | None:
    """The model file at ``path`` (by its magic bytes), or ``None``."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    fmt = detect_weights_format(head, size)
    return None if fmt is None else FoundModel(path=path, size_bytes=size, format=fmt)


def _find_models(root: Path, warnings: list[str]) -> list[FoundModel]:
    found: list[FoundModel] = []
    for p in _walk_files(root, warnings):
        try:
            m = identify(p)
        except OSError as e:
            warnings.append(f"cannot read {p}: {e.strerror}")
            continue
        if m is not None:
            found.append(m)
    return found


def _emptied_dirs(root: Path, removed: set[Path]) -> list[Path]:
    """Dirs of the LLM_Mesh/models/ tree holding nothing once ``removed`` is gone, deepest first."""
    tree = root / MODELS_TREE
    if not tree.is_dir() or tree.is_symlink():
        return []
    empty: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(tree, topdown=False):
        here = Path(dirpath)
        files_left = [f for f in filenames if here / f not in removed]
        subdirs_left = [d for d in dirnames if here / d not in empty]
        if not files_left and not subdirs_left:
            empty.add(here)
    return sorted(empty, key=lambda p: (-len(p.parts), str(p)))


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def _gitignore_missing(root: Path) -> list[str]:
    have = {line.strip() for line in _read_lines(root / ".gitignore")}
    return [line for line in GITIGNORE_LINES if line not in have]


def in_git_work_tree(root: Path) -> bool:
    """Whether ``root`` is in a git work tree: a ``.git`` folder or file (a worktree's, a
    submodule's) at it or a folder above it. No git subprocess."""
    return any((d / ".git").exists() for d in (root, *root.parents))


def _doc_references(root: Path, names: set[str]) -> list[DocReference]:
    needles = ["LLM_Mesh/models/", *sorted(names)]
    refs: list[DocReference] = []
    for p in _walk_files(root):
        if p.suffix.lower() not in DOC_SUFFIXES or p.stat().st_size > DOC_MAX_BYTES:
            continue
        try:
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines, start=1):
            hit = next((n for n in needles if n in line), None)
            if hit is not None:
                refs.append(DocReference(path=p, line_no=i, line=line.strip(), mentions=hit))
    return refs


def scan(root: Path | str = ".") -> MigrationPlan:
    """What ``apply`` would do under ``root``. Reads only; changes nothing."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise InvalidRequest(f"migrate: {root} is not a directory")
    refuse_a_home(root)
    plan = MigrationPlan(root=root)
    plan.models = _find_models(root, plan.warnings)
    removed = {m.path for m in plan.models}
    plan.dirs_to_remove = _emptied_dirs(root, removed)
    # a .gitignore only in a git checkout (found 2026-12-07, user41b: offered in any folder)
    plan.in_git = in_git_work_tree(root)
    plan.gitignore_missing = _gitignore_missing(root) if plan.in_git else []
    plan.doc_references = _doc_references(root, {m.path.name for m in plan.models})
    return plan


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_gitignore(root: Path) -> list[str]:
    """Add the model-file lines ``.gitignore`` lacks (no duplicates); return those added."""
    path = root / ".gitignore"
    missing = _gitignore_missing(root)
    if not missing:
        return []
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = {line.strip() for line in text.splitlines()}
    block: list[str] = []
    if GITIGNORE_COMMENT not in have:
        block.append(GITIGNORE_COMMENT)
    block.extend(missing)
    if text and not text.endswith("\n"):
        text += "\n"
    if text.strip():
        text += "\n"
    _write_atomic(path, text + "\n".join(block) + "\n")
    return missing


def apply(plan: MigrationPlan) -> ApplyResult:
    """Remove exactly ``plan``'s model files and emptied model dirs; complete ``.gitignore``.

    Each file is identified again by its magic bytes just before removal: one
    that changed since the scan (or is no longer a model) is left alone.
    """
    result = ApplyResult(doc_references=list(plan.doc_references))
    removed: set[Path] = set()
    for m in plan.models:
        try:
            now = None if m.path.is_symlink() else identify(m.path)
        except OSError as e:
            result.skipped.append(f"{m.path}: {e.strerror}")
            continue
        if now is None:
            result.skipped.append(f"{m.path}: no longer a model file; left alone")
            continue
        m.path.unlink()
        removed.add(m.path)
        result.removed.append(now)
    for d in _emptied_dirs(plan.root, removed):
        try:
            d.rmdir()  # only ever succeeds on an empty dir
        except OSError as e:
            result.skipped.append(f"{d}: {e.strerror}")
            continue
        result.removed_dirs.append(d)
    result.gitignore_added = update_gitignore(plan.root) if plan.in_git else []
    return result


def verify(root: Path | str = ".", *, large_bytes: int = GB) -> VerifyResult:
    """Check that no model file and no file of ``large_bytes`` or more is left."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise InvalidRequest(f"migrate: {root} is not a directory")
    refuse_a_home(root)
    res = VerifyResult(root=root)
    for p in _walk_files(root):
        try:
            size = p.stat().st_size
            m = identify(p)
        except OSError:
            continue
        if m is not None:
            res.models.append(m)
        elif size >= large_bytes:
            res.large_files.append((p, size))
    return res


def format_size(n: int) -> str:
    for unit, scale in (("GB", GB), ("MB", 1_000_000), ("kB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def render_plan(plan: MigrationPlan) -> list[str]:
    """Plain lines describing a dry run."""
    r = plan.root
    out = [f"Model files under {r} (found by their magic bytes, not by name):"]
    out += [f"  {_rel(r, m.path)}  {format_size(m.size_bytes)}  [{m.format}]" for m in plan.models]
    if not plan.models:
        out.append("  none")
    out.append(f"Would free {format_size(plan.total_bytes)}.")
    out += [f"Would remove emptied dir {_rel(r, d)}/" for d in plan.dirs_to_remove]
    if plan.gitignore_missing:
        out.append("Would add to .gitignore: " + ", ".join(plan.gitignore_missing))
    out += _render_refs(r, plan.doc_references)
    out += [f"warning: {w}" for w in plan.warnings]
    if plan.nothing_to_do:  # --apply would change nothing (found 2026-12-06, newuser33)
        out.append(
            "Nothing to do: no model files, and .gitignore already lists them."
            if plan.in_git
            else "Nothing to do: no model files (not a git checkout: no .gitignore to complete)."
        )
    else:
        out.append(f"Dry run: nothing changed. Run `{_apply_command(r)}` to remove these files.")
    return out


def _render_refs(root: Path, refs: list[DocReference]) -> list[str]:
    if not refs:
        return []
    out = ["Documentation still pointing at local model files (update by hand):"]
    out += [f"  {_rel(root, d.path)}:{d.line_no}: {d.line}" for d in refs]
    return out


def render_apply(plan: MigrationPlan, result: ApplyResult) -> list[str]:
    r = plan.root
    out = [f"Removed {_rel(r, m.path)} ({format_size(m.size_bytes)})" for m in result.removed]
    out += [f"Removed emptied dir {_rel(r, d)}/" for d in result.removed_dirs]
    out.append(f"Freed {format_size(result.freed_bytes)}.")
    if result.gitignore_added:
        out.append("Added to .gitignore: " + ", ".join(result.gitignore_added))
    out += [f"skipped: {s}" for s in result.skipped]
    out += _render_refs(r, result.doc_references)
    return out


def render_verify(res: VerifyResult) -> list[str]:
    r = res.root
    if res.ok:
        return [f"OK: no model files and no file of 1 GB or more under {r}."]
    out = [f"Model file left: {_rel(r, m.path)} ({format_size(m.size_bytes)})" for m in res.models]
    out += [f"Large file left: {_rel(r, p)} ({format_size(s)})" for p, s in res.large_files]
    out.append(f"Run `{_apply_command(r)}` to remove model files; large files are yours to check.")
    return out


def _apply_command(root: Path) -> str:
    """The command that applies to ``root`` (found 2026-12-05, newuser32: without the folder,
    run as written elsewhere, it applied to the current one)."""
    return f"llm-mesh migrate {shlex.quote(str(root))} --apply"
