"""The home (``~/.llm-mesh``, ``$LLM_MESH_HOME``) and the folders holding keys: made mode
0700 whatever the umask (found 2026-12-04: 0755, its listing and any readable file open
to every user of the machine); a home made before and still open is named with its fix on
stderr by ``up``, ``demo``, ``registry serve`` and ``node start`` (``ensure_home``), never
changed silently."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from LLM_Mesh.cli.common import ensure_home
from LLM_Mesh.config import Settings
from LLM_Mesh.secret_files import (
    create_secret_file,
    make_private_dir,
    open_home_warning,
    record_admin_key_registry,
    try_lock,
)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: folders 0755
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_folder_it_makes_is_0700_and_none_it_did_not(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    home = tmp_path / "a" / "b" / ".llm-mesh"
    assert make_private_dir(home) == home
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", home)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # not made here: left as it is


def test_an_existing_folder_is_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    make_private_dir(home)
    assert mode(home) == 0o755


def test_a_file_where_the_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("x")
    with pytest.raises(FileExistsError):
        make_private_dir(tmp_path / "home")


def test_the_key_writers_make_their_folders_0700(tmp_path: Path) -> None:
    assert create_secret_file(tmp_path / "keys" / "node.key", b"secret")
    fd = try_lock(tmp_path / "locks" / "node.key.lock")
    assert fd is not None
    os.close(fd)
    record_admin_key_registry(Settings(home=tmp_path / "home"), ["http://127.0.0.1:8800"])
    assert [mode(tmp_path / d) for d in ("keys", "locks", "home")] == [0o700] * 3


def test_ensure_home_makes_a_new_home_0700_without_a_word(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / ".llm-mesh"
    ensure_home(home)
    assert mode(home) == 0o700
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("opened", [0o755, 0o750, 0o701])
def test_ensure_home_names_an_open_home_and_its_fix_and_leaves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opened: int
) -> None:
    home = tmp_path / "my home"
    home.mkdir()
    home.chmod(opened)
    ensure_home(home)
    said = capsys.readouterr().err
    assert said.count("warning:") == 1
    assert str(home) in said
    assert f"chmod 700 '{home}'" in said.replace("\n", "")
    assert mode(home) == opened  # the user's to change


def test_a_private_home_says_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    assert open_home_warning(home) is None
    assert open_home_warning(tmp_path / "missing") is None


def test_ensure_home_refuses_a_home_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(typer.Exit):
        ensure_home(tmp_path / "file")
