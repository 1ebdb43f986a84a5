"""A file or folder a user names on the command line (a receipt, ``--keys``, node.toml,
``--registry-ca``, ``--served``, ``--receipts``, the node key, ``--home``) that is missing,
a folder, or not what it should be: one ``error:`` line naming the path and what to do,
exit 1; never a traceback nor a bare ``[Errno 2]`` (found 2026-12-06, ux34: a new user's
walk). Unreadable files (mode 000) are not tried: the tests may run as root."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.node.keys import load_or_create_key
from LLM_Mesh.registry.canary_scheduler import load_pool

runner = CliRunner()
KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="  # any 32 bytes
NOWHERE = "http://127.0.0.1:9"


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    env = {"LLM_MESH_HOME": str(tmp_path / "home"), "COLUMNS": "300", **env}
    res = runner.invoke(app, list(args), env=env)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), (
        res.output
    )
    return res.exit_code, " ".join(res.output.split())


def _said(out: str, *words: str) -> None:
    assert out.startswith("error:"), out
    assert "Errno" not in out and "Traceback" not in out, out
    for w in words:
        assert w in out, out


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "garbage.json").write_text("garbage{")
    return {
        "missing": tmp_path / "nope" / "x.json",
        "folder": tmp_path / "a-folder",
        "garbage": tmp_path / "garbage.json",
    }


WHY = {"missing": "no such file (check the path)", "folder": "is a folder, not a file"}


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_receipt_verify_names_the_file(tmp_path: Path, paths: dict[str, Path], kind: str) -> None:
    p = paths[kind]
    code, out = _run(tmp_path, "receipt", "verify", str(p), "--key", KEY)
    assert code == 1
    _said(out, f"the receipt file {p}: {WHY[kind]}")
    code, out = _run(tmp_path, "receipt", "verify", "-", "--keys", str(p))
    assert code == 1
    _said(out, f"--keys {p}: {WHY[kind]}")


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage"])
def test_ledger_verify_receipt_names_the_file(
    tmp_path: Path, paths: dict[str, Path], kind: str
) -> None:
    p = paths[kind]
    code, out = _run(tmp_path, "ledger", "verify", "--registry", NOWHERE, "--receipt", str(p))
    assert code == 1
    _said(out, f"--receipt {p}: " + WHY.get(kind, "holds no receipt"))


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage"])
@pytest.mark.parametrize("command", [["ask", "hi"], ["models"], ["ledger", "verify"]])
def test_a_registry_ca_that_cannot_be_used_is_one_line(
    tmp_path: Path, paths: dict[str, Path], kind: str, command: list[str]
) -> None:
    """Found: ``ask``/``models``/``balance`` printed a traceback (read mid-request)."""
    p = paths[kind]
    code, out = _run(tmp_path, *command, "--registry", NOWHERE, "--registry-ca", str(p))
    assert code == 1
    _said(out, f"cannot use {p} as a CA file: " + WHY.get(kind, "no PEM certificate"))


def test_the_ca_file_of_the_environment_too(tmp_path: Path, paths: dict[str, Path]) -> None:
    p = paths["missing"]
    code, out = _run(tmp_path, "models", "--registry", NOWHERE, LLM_MESH_REGISTRY_CA=str(p))
    assert code == 1
    _said(out, f"cannot use {p} as a CA file: no such file")


def test_a_stale_ca_of_the_environment_stops_no_offline_command(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    """Found 2026-12-06 (review34b): with the CA file read by every command, a stale
    ``LLM_MESH_REGISTRY_CA`` stopped commands that reach no registry (here the node's own
    model list, read from its node.toml)."""
    code, out = _run(tmp_path, "node", "models", "list", LLM_MESH_REGISTRY_CA=str(paths["missing"]))
    assert code == 0 and "CA file" not in out, out


@pytest.mark.parametrize("kind", ["missing", "folder"])
@pytest.mark.parametrize(
    "command", [["node", "models", "list"], ["node", "plan", "--registry", NOWHERE]]
)
def test_a_config_named_is_read_or_refused(
    tmp_path: Path, paths: dict[str, Path], kind: str, command: list[str]
) -> None:
    """Found: a --config that was not there was ignored (exit 0, as if none given)."""
    p = paths[kind]
    code, out = _run(tmp_path, *command, "--config", str(p))
    assert code == 1
    _said(out, f"node config {p}: {WHY[kind]}")


def test_node_start_config_folder(tmp_path: Path, paths: dict[str, Path]) -> None:
    p = paths["folder"]
    code, out = _run(tmp_path, "node", "start", "--engine", "sim", "--config", str(p))
    assert code == 1
    _said(out, f"node config {p}: is a folder")


def test_a_node_key_that_is_a_folder(paths: dict[str, Path]) -> None:
    """Found: ``node start --key-file DIR`` was an IsADirectoryError traceback."""
    with pytest.raises(ValueError, match="is a folder, not a file"):
        load_or_create_key(paths["folder"])


def test_a_canary_prompt_file_missing(paths: dict[str, Path]) -> None:
    with pytest.raises(ValueError) as caught:
        load_pool(paths["missing"])
    assert "no such file (check the path)" in str(caught.value)
    assert "Errno" not in str(caught.value)


def test_a_prompt_file_missing(tmp_path: Path, paths: dict[str, Path]) -> None:
    p = paths["missing"]
    code, out = _run(tmp_path, "ask", "--registry", NOWHERE, "--prompt-file", str(p))
    assert code == 1
    _said(out, f"--prompt-file {p}: no such file")


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_statement_receipt_files(tmp_path: Path, paths: dict[str, Path], kind: str) -> None:
    p = paths[kind]
    account = ["ledger", "statement", "--registry", NOWHERE, "--account", "user:x"]
    code, out = _run(tmp_path, *account, "--receipt", str(p))
    assert code == 1
    _said(out, f"{p}: {WHY[kind]}")


def test_statement_receipts_folder(tmp_path: Path, paths: dict[str, Path]) -> None:
    account = ["ledger", "statement", "--registry", NOWHERE, "--account", "user:x"]
    code, out = _run(tmp_path, *account, "--receipts", str(paths["missing"]))
    assert code == 1
    _said(out, "no such folder (check the path)")
    code, out = _run(tmp_path, *account, "--receipts", str(paths["garbage"]))
    assert code == 1
    _said(out, "is a file, not a folder (--receipt FILE reads one file)")


def test_statement_served_folder(tmp_path: Path, paths: dict[str, Path]) -> None:
    p = paths["folder"]
    code, out = _run(
        tmp_path, "ledger", "statement", "--registry", NOWHERE, "--operator",
        "--operator-token", "lmo_x", "--served", str(p),
    )  # fmt: skip
    assert code == 1
    _said(out, f"--served {p}: is a folder")


def test_a_home_that_is_a_file(tmp_path: Path, paths: dict[str, Path]) -> None:
    p = paths["garbage"]
    code, out = _run(tmp_path, "ledger", "verify", "--registry", NOWHERE, "--home", str(p))
    assert code == 1
    _said(out, f"the state directory {p} is a file, not a folder")


RECEIPT_MOST = 64 * 1024 * 1024  # core/receipt_verify.MAX_INPUT: a receipt's input at most
KEYS_MOST = 1 << 20  # receipt_commands.KEYS_ANSWER_BYTES: a key listing at most


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as f:  # sparse: nothing written, read as zeros
        f.truncate(size)
    return path


def test_an_oversize_receipt_file_is_refused_by_its_size(tmp_path: Path) -> None:
    """Found 2026-12-06 (tidy35): ``ledger verify --receipt FILE`` and ``receipt verify
    FILE`` read the whole file before ``find_receipt`` looked at its length (a 64 GiB
    sparse file: 64 GiB of memory); now read to the bound, said as one (failed before:
    "holds no receipt (the input is larger than 64 MiB)", after reading it all)."""
    p = _sparse(tmp_path / "huge.json", RECEIPT_MOST + 1)
    code, out = _run(tmp_path, "ledger", "verify", "--registry", NOWHERE, "--receipt", str(p))
    assert code == 1
    _said(out, f"--receipt {p}: is larger than {RECEIPT_MOST:,} bytes")
    code, out = _run(tmp_path, "receipt", "verify", str(p), "--key", KEY)
    assert code == 1
    _said(out, f"the receipt file {p}: is larger than {RECEIPT_MOST:,} bytes")
    code, out = _run(tmp_path, "receipt", "verify", "-", "--key", KEY, "--output", str(p))
    assert code == 1
    _said(out, f"--output {p}: is larger than {RECEIPT_MOST:,} bytes")


def test_an_oversize_keys_file_is_refused_by_its_size(tmp_path: Path) -> None:
    """Failed before: ``--keys FILE`` was read whole, however large (a registry's own key
    listing is read to 1 MiB; a saved one now too)."""
    p = _sparse(tmp_path / "keys.json", KEYS_MOST + 1)
    code, out = _run(tmp_path, "receipt", "verify", "-", "--keys", str(p))
    assert code == 1
    _said(out, f"--keys {p}: is larger than {KEYS_MOST:,} bytes")


def test_standard_input_is_read_to_the_same_bound(tmp_path: Path) -> None:
    """Failed before: ``receipt verify -`` read standard input whole (``... | receipt
    verify -`` from a stream that never ends took all the memory there is)."""
    res = runner.invoke(
        app, ["receipt", "verify", "-", "--key", KEY],
        input=b" " * (RECEIPT_MOST + 1), env={"LLM_MESH_HOME": str(tmp_path), "COLUMNS": "300"},
    )  # fmt: skip
    out = " ".join(res.output.split())
    assert res.exit_code == 1
    _said(out, f"standard input: is larger than {RECEIPT_MOST:,} bytes")
