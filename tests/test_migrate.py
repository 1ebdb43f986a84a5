"""``llm-mesh migrate`` backend: find model files by magic, remove only them."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

from LLM_Mesh import migrate
from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.errors import InvalidRequest


def write(p: Path, data: bytes | str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        p.write_text(data)
    else:
        p.write_bytes(data)
    return p


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


def safetensors_bytes() -> bytes:
    body = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(body)) + body + b"\0\0\0\0"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    admin = root / "LLM_Mesh" / "models" / "administrative"
    write(admin / "deepseek-llm-67b-chat.Q2_K.gguf", fake_gguf(3, payload=os.urandom(2000)))
    write(
        admin / "llama-2-70b-chat.ggmlv3.q2_K.bin",
        b"tjgg" + struct.pack("<I", 3) + os.urandom(1000),
    )
    write(admin / "qwen1.5-72b-chat-q2_k.gguf", fake_gguf(2, payload=b"x" * 100))
    (root / "LLM_Mesh" / "models" / "worker").mkdir(parents=True)
    write(root / "LLM_Mesh" / "mesh_manager.py", "print('code')\n")
    # A model file under a misleading name, elsewhere.
    write(root / "data" / "weights.dat", fake_gguf(3))
    write(root / "data" / "model.safetensors", safetensors_bytes())
    # Decoys: .bin / .gguf names that are not models.
    write(root / "firmware.bin", os.urandom(4096))
    write(root / "assets" / "archive.bin", zip_bytes())
    write(root / "notes.gguf", "just text named like a model\n")
    # Skipped dirs keep their model files.
    write(root / ".git" / "objects" / "x.gguf", fake_gguf(3))
    write(root / ".venv" / "lib" / "m.gguf", fake_gguf(3))
    write(root / "node_modules" / "pkg" / "m.bin", fake_gguf(3))
    write(
        root / "docs" / "setup.md",
        "# Setup\nPut files in LLM_Mesh/models/administrative/.\nUse qwen1.5-72b-chat-q2_k.gguf.\nOther line.\n",
    )
    write(root / ".gitignore", ".venv/\n*.gguf\n__pycache__/\n")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_dry_run_finds_models_by_magic_and_changes_nothing(tree: Path) -> None:
    before = snapshot(tree)
    plan = migrate.scan(tree)
    assert snapshot(tree) == before
    found = {str(m.path.relative_to(tree)): m for m in plan.models}
    assert set(found) == {
        "LLM_Mesh/models/administrative/deepseek-llm-67b-chat.Q2_K.gguf",
        "LLM_Mesh/models/administrative/llama-2-70b-chat.ggmlv3.q2_K.bin",
        "LLM_Mesh/models/administrative/qwen1.5-72b-chat-q2_k.gguf",
        "data/weights.dat",
        "data/model.safetensors",
    }
    assert found["LLM_Mesh/models/administrative/llama-2-70b-chat.ggmlv3.q2_K.bin"].format == "ggml"
    assert found["data/model.safetensors"].format == "safetensors"
    assert found["data/weights.dat"].size_bytes == len(fake_gguf(3))
    assert plan.total_bytes == sum(m.size_bytes for m in plan.models)
    assert plan.gitignore_missing == ["LLM_Mesh/models/", "*.bin", "*.safetensors", "models/"]
    assert [d.relative_to(tree).as_posix() for d in plan.dirs_to_remove] == [
        "LLM_Mesh/models/administrative",
        "LLM_Mesh/models/worker",
        "LLM_Mesh/models",
    ]
    refs = {(d.path.name, d.line_no) for d in plan.doc_references}
    assert ("setup.md", 2) in refs and ("setup.md", 3) in refs
    assert ("setup.md", 4) not in refs
    text = "\n".join(migrate.render_plan(plan))
    assert "Dry run" in text and "data/weights.dat" in text


def test_apply_removes_only_models_and_emptied_dirs(tree: Path) -> None:
    plan = migrate.scan(tree)
    result = migrate.apply(plan)
    assert len(result.removed) == 5
    assert result.freed_bytes == plan.total_bytes
    assert not (tree / "LLM_Mesh" / "models").exists()
    assert (tree / "LLM_Mesh" / "mesh_manager.py").exists()
    assert (tree / "data").is_dir()  # only the models tree is pruned
    for decoy in ("firmware.bin", "assets/archive.bin", "notes.gguf", "docs/setup.md"):
        assert (tree / decoy).exists(), decoy
    for kept in (".git/objects/x.gguf", ".venv/lib/m.gguf", "node_modules/pkg/m.bin"):
        assert (tree / kept).exists(), kept
    assert result.doc_references
    assert "Freed" in "\n".join(migrate.render_apply(plan, result))


def test_models_tree_with_other_files_keeps_them(tree: Path) -> None:
    write(tree / "LLM_Mesh" / "models" / "README.md", "keep me\n")
    migrate.apply(migrate.scan(tree))
    assert (tree / "LLM_Mesh" / "models" / "README.md").exists()
    assert not (tree / "LLM_Mesh" / "models" / "administrative").exists()


def test_gitignore_no_duplicates_and_idempotent(tree: Path) -> None:
    migrate.apply(migrate.scan(tree))
    lines = (tree / ".gitignore").read_text().splitlines()
    assert lines[:3] == [".venv/", "*.gguf", "__pycache__/"]
    assert migrate.GITIGNORE_COMMENT in lines
    for entry in migrate.GITIGNORE_LINES:
        assert lines.count(entry) == 1, entry
    first = (tree / ".gitignore").read_text()
    plan2 = migrate.scan(tree)
    assert plan2.models == [] and plan2.gitignore_missing == [] and plan2.nothing_to_do
    result2 = migrate.apply(plan2)
    assert result2.removed == [] and result2.gitignore_added == []
    assert (tree / ".gitignore").read_text() == first


def test_gitignore_created_when_missing(tmp_path: Path) -> None:
    added = migrate.update_gitignore(tmp_path)
    assert added == list(migrate.GITIGNORE_LINES)
    assert (tmp_path / ".gitignore").read_text().splitlines() == [
        migrate.GITIGNORE_COMMENT,
        *migrate.GITIGNORE_LINES,
    ]


def test_verify_fails_before_and_passes_after(tree: Path) -> None:
    before = migrate.verify(tree)
    assert not before.ok and len(before.models) == 5
    assert "Model file left" in "\n".join(migrate.render_verify(before))
    migrate.apply(migrate.scan(tree))
    after = migrate.verify(tree)
    assert after.ok, after
    assert "OK" in migrate.render_verify(after)[0]


def test_verify_flags_large_leftovers(tree: Path) -> None:
    big = tree / "dump.tar"
    with big.open("wb") as f:  # sparse: no real GB written
        f.truncate(migrate.GB)
    res = migrate.verify(tree)
    assert (big, migrate.GB) in res.large_files
    assert not migrate.verify(tree, large_bytes=migrate.GB + 1).large_files


def test_file_changed_since_scan_is_left_alone(tree: Path) -> None:
    plan = migrate.scan(tree)
    target = tree / "data" / "weights.dat"
    target.write_bytes(b"now a text file\n")
    result = migrate.apply(plan)
    assert target.exists()
    assert any("weights.dat" in s for s in result.skipped)


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "real.gguf", fake_gguf(3))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "link.gguf").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent)
    plan = migrate.scan(root)
    assert plan.models == []
    migrate.apply(plan)
    assert outside.exists()


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not a directory"):
        migrate.scan(tmp_path / "missing")


def test_the_command_it_says_to_run_names_the_folder_it_scanned(tmp_path: Path) -> None:
    """Found 2026-12-05 (newuser32): ``llm-mesh migrate --verify old-checkout`` said ``Run
    `llm-mesh migrate --apply` to remove model files``: run as written, from elsewhere, that
    removes the model files under the current folder, not the one checked. The dry run
    said ``Run with --apply`` and no folder either. Both now name the folder, quoted."""
    import shlex

    root = tmp_path / "old checkout"
    write(root / "LLM_Mesh" / "models" / "m.gguf", fake_gguf(3))
    command = f"llm-mesh migrate {shlex.quote(str(root.resolve()))} --apply"
    assert command in migrate.render_plan(migrate.scan(root))[-1]
    assert command in migrate.render_verify(migrate.verify(root))[-1]


def test_a_clean_checkout_is_told_there_is_nothing_to_apply(tmp_path: Path) -> None:
    """Found 2026-12-06 (newuser33): in a checkout with no model file and a complete
    .gitignore the dry run listed ``none``, then said ``Run `llm-mesh migrate ... --apply` to
    remove these files``: there are none, and --apply would do nothing."""
    (tmp_path / ".git").mkdir()  # a checkout: its .gitignore is completed
    migrate.apply(migrate.scan(tmp_path))  # writes the .gitignore lines: nothing left to do
    plan = migrate.scan(tmp_path)
    assert plan.nothing_to_do
    last = migrate.render_plan(plan)[-1]
    assert "--apply" not in last, last
    assert last == "Nothing to do: no model files, and .gitignore already lists them."


def test_gitignore_is_offered_only_in_a_git_checkout(tmp_path: Path) -> None:
    """Found 2026-12-07 (user41b): ``llm-mesh migrate`` in a folder that is no git checkout
    offered (and --apply wrote) .gitignore lines. A ``.git`` folder or file (a worktree's)
    at the folder or above it makes one; no git subprocess."""
    plain = tmp_path / "plain"
    write(plain / "m.gguf", fake_gguf(3))
    plan = migrate.scan(plain)
    assert plan.gitignore_missing == [] and not plan.in_git
    assert not any(".gitignore" in line for line in migrate.render_plan(plan))
    result = migrate.apply(plan)
    assert result.gitignore_added == [] and not (plain / ".gitignore").exists()
    last = migrate.render_plan(migrate.scan(plain))[-1]
    assert last.startswith("Nothing to do: no model files (not a git checkout"), last
    # a worktree's .git is a file; the checkout's root is a folder above
    wt = tmp_path / "wt"
    write(wt / ".git", "gitdir: /elsewhere/.git/worktrees/wt\n")
    sub = wt / "sub"
    sub.mkdir()
    assert migrate.scan(sub).gitignore_missing == list(migrate.GITIGNORE_LINES)
    assert migrate.apply(migrate.scan(sub)).gitignore_added == list(migrate.GITIGNORE_LINES)


@pytest.mark.parametrize("marker", ["node.key", "node.toml", "registry.key", "admin.key"])
def test_a_node_home_of_any_name_is_left_alone(tmp_path: Path, marker: str) -> None:
    """Found 2026-12-07 (newuser41): only a folder *named* ``.llm-mesh`` was skipped, but a
    node's home may have any name (the README's second node: ``LLM_MESH_HOME=~/.llm-mesh-node2``;
    ``up --home``): ``llm-mesh migrate --apply`` run in the folder above it removed the model
    file that node serves (``models/gemma-3-270m-q4_k_m.gguf``), and ``--verify`` then failed
    on it. A folder holding a node's or registry's state is not entered, and the dry run says
    so."""
    home = tmp_path / ".llm-mesh-node2"
    served = write(home / "models" / "gemma-3-270m-q4_k_m.gguf", fake_gguf(3))
    write(home / marker, "state\n")
    stray = write(tmp_path / "checkout" / "LLM_Mesh" / "models" / "m.gguf", fake_gguf(3))
    plan = migrate.scan(tmp_path)
    assert [m.path for m in plan.models] == [stray.resolve()]
    said = "\n".join(migrate.render_plan(plan))
    assert ".llm-mesh-node2" in said and "left alone" in said, said
    migrate.apply(plan)
    assert served.exists() and not stray.exists()
    assert migrate.verify(tmp_path).ok


def test_a_models_folder_a_node_hashed_is_left_alone(tmp_path: Path) -> None:
    """A node's models folder (its ``.sha256-cache.json``: ``node models add`` before the
    node has a key) is not entered either."""
    served = write(tmp_path / "home" / "models" / "m.gguf", fake_gguf(3))
    write(tmp_path / "home" / "models" / ".sha256-cache.json", "{}")
    assert migrate.scan(tmp_path).models == []
    assert served.exists()


def test_a_home_without_models_is_skipped_without_a_word(tmp_path: Path) -> None:
    """A registry's home (``registry.key``, no ``models/``) is not entered either, but there
    is nothing of a node's in it to name: the dry run stays quiet about it."""
    write(tmp_path / "reg" / "registry.key", "k")
    write(tmp_path / "reg" / "ledger" / "m.gguf", fake_gguf(3))
    plan = migrate.scan(tmp_path)
    assert plan.models == [] and plan.warnings == []


@pytest.mark.parametrize("where", ["home", "models", "named", "cache"])
def test_a_home_given_as_the_folder_to_clean_is_refused(tmp_path: Path, where: str) -> None:
    """Found 2026-12-07 (review41b): a home was left alone only as a folder *below* the one
    scanned; ``llm-mesh migrate --apply`` run in a node's home (``cd ~/.llm-mesh``; or
    ``migrate ~/.llm-mesh-node2``, or its ``models/``) listed and removed the very model files
    that node serves. Such a folder, or one inside a home's ``models/`` (or in a folder
    named ``.llm-mesh``), is refused with an error that says why and deletes nothing."""
    home = tmp_path / (".llm-mesh" if where == "named" else "node2")
    served = write(home / "models" / "sub" / "m.gguf", fake_gguf(3))
    if where == "cache":  # `node models add` before the node had a key: no key, a cache
        write(home / "models" / ".sha256-cache.json", "{}")
    elif where != "named":
        write(home / "node.key", "k")
    root = {
        "home": home,
        "models": home / "models",
        "named": home / "models",
        "cache": home / "models" / "sub",
    }[where]
    with pytest.raises(InvalidRequest, match="state") as caught:
        migrate.scan(root)
    assert "llm-mesh node models list" in str(caught.value)
    with pytest.raises(InvalidRequest, match="state"):
        migrate.verify(root)
    assert served.exists()


def test_a_checkout_beside_a_home_is_still_cleaned(tmp_path: Path) -> None:
    """A folder named ``models`` of a checkout whose parent is no home is cleaned as before
    (the refusal above is for a home's own ``models/`` only)."""
    stray = write(tmp_path / "repo" / "models" / "m.gguf", fake_gguf(3))
    write(tmp_path / "node2" / "node.key", "k")
    plan = migrate.scan(tmp_path / "repo" / "models")
    assert [m.path for m in plan.models] == [stray.resolve()]
