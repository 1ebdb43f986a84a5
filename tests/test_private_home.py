"""The home (``~/.llm-mesh``, ``$LLM_MESH_HOME``) and the folders holding keys: made mode
0700 whatever the umask (found 2026-12-04: 0755, its listing and any readable file open
to every user of the machine); a home made before and still open is named with its fix on
stderr by ``up``, ``demo``, ``registry serve`` and ``node start`` (``ensure_home``), never
changed silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

from LLM_Mesh.cli.common import ensure_home
from LLM_Mesh.config import Settings
from LLM_Mesh.registry import gateway_key
from LLM_Mesh.secret_files import (
    HOME_FILES,
    create_secret_file,
    make_own_files_private,
    make_private_dir,
    open_files_warning,
    open_home_warning,
    record_admin_key_registry,
    system_home_refusal,
    try_lock,
)
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)


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


# --- a home that is a symbolic link, another user's, or a folder of the system ------------
# (found 2026-12-04: a link was followed silently, another user's home said nothing, and
# LLM_MESH_HOME=/ was taken, its warning advising `chmod 700 /`)


def test_a_home_that_is_a_link_is_named_and_its_target_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    home = tmp_path / "home"
    home.symlink_to(target)
    ensure_home(home)
    said = " ".join(capsys.readouterr().err.split())
    assert said.count("warning:") == 1
    assert f"{home} is a symbolic link (to {target})" in said
    assert "chmod 700" not in said  # (that would change the target)
    assert mode(target) == 0o755


def test_a_link_to_a_private_folder_is_named_too(tmp_path: Path) -> None:
    target = tmp_path / "private"
    target.mkdir(mode=0o700)
    (tmp_path / "home").symlink_to(target)
    warning = open_home_warning(tmp_path / "home")
    assert warning is not None and "symbolic link" in warning


def test_a_dangling_link_is_refused_and_nothing_made_through_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.symlink_to(tmp_path / "nowhere")
    with pytest.raises(typer.Exit):
        ensure_home(home)
    assert not (tmp_path / "nowhere").exists()


def test_a_home_another_user_owns_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    other = os.getuid() + 1
    warning = open_home_warning(home, uid=other)
    assert warning is not None
    assert f"{home} belongs to another user (uid {os.getuid()}, you are {other})" in warning
    assert "chmod" not in warning
    assert open_home_warning(home) is None  # this user's, private: nothing to say


def test_ensure_home_names_another_users_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    ensure_home(home)
    assert "belongs to another user" in capsys.readouterr().err


def test_a_folder_swapped_for_a_link_is_not_chmodded_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the mkdir and the chmod, the new folder replaced by a link to another:
    before, ``os.chmod`` by name made the link's target 0700."""
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o755)
    real_mkdir = Path.mkdir

    def mkdir_then_swap(self: Path, mode: int = 0o777, *a: object, **kw: object) -> None:
        real_mkdir(self, mode)
        if self.name == "home":
            self.rmdir()
            self.symlink_to(victim)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_swap)
    with pytest.raises(OSError):
        make_private_dir(tmp_path / "home")
    assert mode(victim) == 0o755


@pytest.mark.parametrize("where", ["/", "/etc", "/tmp", "/usr", "/var", "/home", "/usr/local"])
def test_a_folder_of_the_system_is_refused(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = mode(Path(where))
    with pytest.raises(typer.Exit):
        ensure_home(Path(where))
    said = " ".join(capsys.readouterr().err.split())
    assert f"error: {where} is a folder of the system" in said
    assert "dedicated folder" in said and "chmod 700" not in said
    assert mode(Path(where)) == before
    assert system_home_refusal(Path(where + "/")) is not None
    assert system_home_refusal(Path("/usr/../" + where.lstrip("/"))) is not None


def test_a_link_to_a_folder_of_the_system_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").symlink_to("/etc")
    refusal = system_home_refusal(tmp_path / "home")
    assert refusal is not None and "(it leads to /etc)" in refusal


def test_a_folder_of_ones_own_is_not_refused(tmp_path: Path) -> None:
    assert system_home_refusal(tmp_path / ".llm-mesh") is None
    assert system_home_refusal(Path("/home/someone/.llm-mesh")) is None
    assert system_home_refusal(Path("/var/lib/llm-mesh")) is None


# --- files of a private home made 0644 before 2026-12-07 (perms40 makes them 0600) --------


def test_the_homes_own_files_others_can_read_are_made_private_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files the mesh makes, named as it names them, made 0644 by a version before
    2026-12-07 (or copied back from a backup that kept it): ``up``, ``demo``, ``registry
    serve`` and ``node start`` only warned, and they stayed open to every user until the
    user ran the fix (found 2026-12-07, files41). Now made private (``chmod go=``), said."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    for name in ("registry.db", "admin.key.registry", "ledger.checkpoint", "registry.db-wal"):
        (home / name).write_text("x")
        (home / name).chmod(0o644 if name != "ledger.checkpoint" else 0o600)
    (home / "registry.db-wal").chmod(0o640)
    (home / "admin.key.registry").chmod(0o666)  # no secret: only the write taken (files42)
    ensure_home(home)
    said = " ".join(capsys.readouterr().err.split())
    assert "warning:" not in said
    assert f"made private (chmod go=) in {home}: registry.db, registry.db-wal (keys" in said
    assert f"(chmod go-w) in {home}: admin.key.registry (" in said
    made = {n: mode(home / n) for n in ("registry.db", "registry.db-wal")}
    assert made == dict.fromkeys(made, 0o600) and mode(home / "admin.key.registry") == 0o644
    ensure_home(home)
    assert capsys.readouterr().err == ""  # said once


def test_files_the_home_does_not_own_or_know_are_named_and_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of the user's (``node.toml`` is hand-written; a name the mesh does not make),
    a link at a known name (never followed) and a known name with other names (a hard link:
    its other names' file too) are left as they are; what others can read is warned of."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    for name in ("notes.txt", "node.toml", "registry.db"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
    (tmp_path / "public").write_text("x")
    (tmp_path / "public").chmod(0o644)
    (home / "admin.key.registry").symlink_to(tmp_path / "public")  # not followed, not named
    os.link(tmp_path / "public", home / "ledger.checkpoint")
    (home / "models").mkdir(mode=0o755)  # a folder: not a file of the home's top
    ensure_home(home)
    said = " ".join(capsys.readouterr().err.split())
    assert f"made private (chmod go=) in {home}: registry.db" in said
    assert said.count("warning:") == 1
    assert "2 file(s)" in said and "(node.toml, notes.txt;" in said  # (ledger.checkpoint:
    # one of the mesh's that holds no secret, others may only read: not said, files42)
    assert f"chmod go= {home}/*" in said
    assert mode(tmp_path / "public") == 0o644 and mode(home / "notes.txt") == 0o644
    os.system(f"chmod go= {home}/*")  # the command it gave
    ensure_home(home)
    assert capsys.readouterr().err == ""


def test_the_staged_next_registry_key_is_made_private_too(tmp_path: Path) -> None:
    """``registry.key.next`` (rot41, docs/deploy.md "Rotating ``registry.key``", step 0:
    ``openssl genpkey`` makes it with the umask's 0644) is a secret key the registry reads:
    made private as ``registry.key.previous`` is (found 2026-12-07, review41: not in
    ``HOME_FILES``, only warned of); ``registry.key.previous.since`` (a time, no secret)
    only loses the group's and others' write (files42)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    for name in ("registry.key.next", "registry.key.previous.since"):
        (home / name).write_text("x")
        (home / name).chmod(0o664)
    assert make_own_files_private(home) == ["registry.key.next", "registry.key.previous.since"]
    assert mode(home / "registry.key.next") == 0o600
    assert mode(home / "registry.key.previous.since") == 0o644
    g = gateway_key  # every key file it reads, listed
    names = {g.REGISTRY_KEY_FILE, g.PREVIOUS_KEY_FILE, g.SINCE_FILE, g.NEXT_KEY_FILE}
    assert names <= HOME_FILES


def test_a_group_mode_given_on_purpose_to_a_file_with_no_secret_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 2026-12-07 (files42): every start took the group's and others' bits from every
    file of ``HOME_FILES``, a mode given on purpose too (a public certificate a group reads,
    a checkpoint a backup group copies). Now only a secret-bearing file (keys, the store) is
    made private; any other loses only the write bits, its read kept and not warned of."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    modes = {"node-tls.crt": 0o644, "ledger.checkpoint": 0o640, "witness_keys.json": 0o664,
             "registry.key": 0o640, "node-tls.key": 0o644}  # fmt: skip
    for name, given in modes.items():
        (home / name).write_text("x")
        (home / name).chmod(given)
    ensure_home(home)
    said = " ".join(capsys.readouterr().err.split())
    kept = {name: mode(home / name) for name in modes}
    assert kept == {"node-tls.crt": 0o644, "ledger.checkpoint": 0o640, "witness_keys.json": 0o644,
                    "registry.key": 0o600, "node-tls.key": 0o600}  # fmt: skip
    assert f"made private (chmod go=) in {home}: node-tls.key, registry.key (" in said
    assert f"(chmod go-w) in {home}: witness_keys.json (" in said and "warning:" not in said
    ensure_home(home)
    assert capsys.readouterr().err == ""  # kept, and not said again
    assert {name: mode(home / name) for name in modes} == kept


def test_the_home_of_another_user_or_through_a_link_is_not_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (real / "registry.db").write_text("x")
    (real / "registry.db").chmod(0o644)
    link = tmp_path / "home"
    link.symlink_to(real)
    assert make_own_files_private(link) == []
    assert make_own_files_private(real, uid=os.getuid() + 1) == []  # another user's home
    assert mode(real / "registry.db") == 0o644
    assert make_own_files_private(real) == ["registry.db"]
    assert mode(real / "registry.db") == 0o600


def test_a_home_open_to_others_says_the_home_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    (home / "registry.db").write_text("x")
    (home / "registry.db").chmod(0o644)
    assert open_files_warning(home) is None  # the home's chmod 700 is the fix said
    assert open_home_warning(home) is not None
    many = tmp_path / "many"
    many.mkdir(mode=0o700)
    for i in range(6):
        (many / f"f{i}").write_text("x")
        (many / f"f{i}").chmod(0o640)
    warning = open_files_warning(many)
    assert warning is not None and "6 file(s)" in warning and "f0, f1, f2, f3 and 2 more" in warning


def test_a_nodes_certificate_and_a_witness_state_made_now_are_not_warned_about(
    tmp_path: Path,
) -> None:
    """The files other commands write at the home's top are 0600 too, so a home made now
    is never named by ``open_files_warning`` (found 2026-12-07, review40: ``node tls init``'s
    ``node-tls.crt`` and ``ledger witness``'s ``witness_state.json`` were the umask's 0644,
    and every ``node start`` after ``node tls init`` warned of a file "made before")."""
    from LLM_Mesh.node.tls import default_paths, make_self_signed
    from LLM_Mesh.witness.state import STATE_FILE, save_state

    home = tmp_path / "home"
    make_private_dir(home)
    cert, key = default_paths(Settings(home=home))
    make_self_signed(cert, key, ["localhost"])
    save_state(home / STATE_FILE, {})
    assert mode(cert) == 0o600 and mode(home / STATE_FILE) == 0o600
    assert open_files_warning(home) is None
    assert sorted(p.name for p in home.iterdir()) == sorted([STATE_FILE, cert.name, key.name])


def test_node_models_add_makes_a_new_home_0700(tmp_path: Path) -> None:
    """Found 2026-12-07 (newuser41): ``llm-mesh node models add FILE`` (or a catalog id) as
    the first command in a new home made ``$LLM_MESH_HOME`` with the umask's 0755 (its
    ``models`` folder by ``mkdir(parents=True)``), and ``node keys init`` then wrote
    ``node.key`` into a home every user could list: the README says the home is made 0700."""
    from typer.testing import CliRunner

    from LLM_Mesh.cli.node_commands import node_app
    from LLM_Mesh.core.model_files import fake_gguf

    src = tmp_path / "my-model.gguf"
    src.write_bytes(fake_gguf(payload=b"\x00" * 100))
    home = tmp_path / "new" / ".llm-mesh-node2"
    args = ["models", "add", str(src), "--name", "tiny", "--home", str(home)]
    r = CliRunner().invoke(node_app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (home / "models" / "tiny.gguf").is_file()
    assert mode(home) == 0o700 and mode(tmp_path / "new") == 0o700
