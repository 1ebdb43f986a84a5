"""``secret_files.replace_file``: a small file of the home replaced whole (temporary file,
``fsync``, rename), mode 0600 from its creation, and never written through a name someone
else put in its folder (found 2026-12-07, files41: the temporary file, ``<name>.<pid>.tmp``,
was opened with ``O_CREAT | O_TRUNC``, following a symbolic link planted at that name: in a
folder others can write (a SQLite URL or a key path under /tmp) the link's target, any file
of the user's, was truncated, overwritten and made 0600)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from LLM_Mesh.secret_files import make_private_dir, replace_file
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)


def _old_temporary_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _leftovers(folder: Path, path: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f"{path.name}."))


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # a folder others can write, as /tmp
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_bytes(b"the user's own file\n")
    victim.chmod(0o644)
    path = shared / "ledger.checkpoint"
    planted = _old_temporary_name(path)
    planted.symlink_to(victim)
    replace_file(path, b"new\n")
    assert path.read_bytes() == b"new\n" and mode(path) == 0o600
    assert not path.is_symlink()
    assert victim.read_bytes() == b"the user's own file\n" and mode(victim) == 0o644
    assert planted.is_symlink() and os.readlink(planted) == str(victim)  # left as it is
    assert _leftovers(shared, path) == [planted.name]  # no temporary file of ours left


def test_a_dangling_link_at_the_temporary_name_makes_no_file_where_it_leads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "settlement.holder"
    target = tmp_path / "elsewhere" / "made"
    target.parent.mkdir()
    _old_temporary_name(path).symlink_to(target)
    replace_file(path, b"h-1\n")
    assert path.read_bytes() == b"h-1\n"
    assert not target.exists()


def test_a_hard_link_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    """A file of the user's linked at the temporary name (``O_TRUNC`` truncated it)."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"kept\n")
    path = tmp_path / "gateway.pin"
    os.link(victim, _old_temporary_name(path))
    replace_file(path, b"pin\n")
    assert path.read_bytes() == b"pin\n" and victim.read_bytes() == b"kept\n"


def test_a_replaced_file_is_0600_even_over_a_stale_temporary_file(tmp_path: Path) -> None:
    """``replace_file`` writes ``<name>.<pid>.tmp`` then renames it: one left 0644 by a
    process killed mid-write (an older version wrote ``admin.key.registry``'s so, with the
    umask's mode) under this pid (a container's registry runs as the same pid each time)
    kept its mode, and the file replaced was 0644 (found 2026-12-07, review40). Now a stale
    one of ours (a regular file this user owns) is removed, never written through."""
    home = tmp_path / "home"
    make_private_dir(home)
    path = home / "admin.key.registry"
    stale = _old_temporary_name(path)
    stale.write_text("half written")
    stale.chmod(0o644)
    replace_file(path, b"http://127.0.0.1:8800\n")
    assert path.read_bytes() == b"http://127.0.0.1:8800\n"
    assert mode(path) == 0o600
    assert _leftovers(home, path) == []


@pytest.mark.parametrize("wanted", [0o600, 0o644, 0o400])
def test_the_mode_asked_is_the_files_whatever_the_umask(tmp_path: Path, wanted: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    path.chmod(0o666)
    os.umask(0o077)  # (the fixture restores it)
    replace_file(path, b"new", wanted)
    assert path.read_bytes() == b"new" and mode(path) == wanted


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger_seen.json"
    path.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        replace_file(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path, path) == []
