"""A registry or node given a TLS certificate and key that are not a pair (or a file it
cannot read) stops at start with one line naming both files (found 2026-12-04: uvicorn's
traceback, ``KEY_VALUES_MISMATCH`` or ``FileNotFoundError``, after start-up began)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.node.tls import make_self_signed
from LLM_Mesh.tls import check_server_pair
from tests.ports import free_port

runner = CliRunner()


def _pair(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(mode=0o700, exist_ok=True)
    made = make_self_signed(folder / "node-tls.crt", folder / "node-tls.key", ["127.0.0.1"])
    return made.cert_path, made.key_path


def test_a_matching_pair_passes(tmp_path: Path) -> None:
    check_server_pair(*_pair(tmp_path / "a"))


def test_a_key_of_another_certificate_is_named_with_both_files(tmp_path: Path) -> None:
    cert, _ = _pair(tmp_path / "a")
    _, other_key = _pair(tmp_path / "b")
    with pytest.raises(ValueError) as caught:
        check_server_pair(cert, other_key)
    said = str(caught.value)
    assert str(cert) in said and str(other_key) in said and "do not match" in said
    assert said.endswith("(they do not match)")  # no caller's hint given: none said


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "a")
    with pytest.raises(ValueError, match=f"cannot read {tmp_path / 'nokey'}"):
        check_server_pair(cert, tmp_path / "nokey")
    with pytest.raises(ValueError, match=f"cannot read {tmp_path / 'nocert'}"):
        check_server_pair(tmp_path / "nocert", key)


def test_files_that_are_not_pem_are_named(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "a")
    with pytest.raises(ValueError, match=f"{key} is not a PEM certificate"):
        check_server_pair(key, key)
    with pytest.raises(ValueError, match=f"{cert} is not a PEM private key"):
        check_server_pair(cert, cert)


def test_an_encrypted_key_is_refused_without_asking_for_a_password(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "a")
    private = load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret"))
    )
    with pytest.raises(ValueError, match="encrypted"):
        check_server_pair(cert, locked)


def test_registry_serve_says_it_in_one_line(tmp_path: Path) -> None:
    cert, _ = _pair(tmp_path / "a")
    _, other_key = _pair(tmp_path / "b")
    home = tmp_path / "home"
    args = ["registry", "serve", "--home", str(home), "--port", "1"]
    out = runner.invoke(app, [*args, "--tls-cert", str(cert), "--tls-key", str(other_key)])
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "do not match" in out.output and str(other_key) in out.output
    _says_the_registry_hint(out.output)


def _says_the_registry_hint(output: str) -> None:
    # found 2026-12-04: a registry operator was told "a node: llm-mesh node tls init ..."
    said = " ".join(output.replace("│", " ").split())
    assert "a registry: the certificate a CA signed" in said, said
    assert "node tls init" not in said, said


def test_registry_serve_with_workers_says_it_in_one_line_too(tmp_path: Path) -> None:
    cert, _ = _pair(tmp_path / "a")
    _, other_key = _pair(tmp_path / "b")
    args = ["registry", "serve", "--home", str(tmp_path / "home"), "--port", str(_free_port()),
            "--workers", "2", "--database-url", "postgresql://postgres@127.0.0.1:1/nowhere"]  # fmt: skip
    out = runner.invoke(app, [*args, "--tls-cert", str(cert), "--tls-key", str(other_key)],
                        env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "do not match" in out.output
    _says_the_registry_hint(out.output)


def test_node_start_says_it_in_one_line(tmp_path: Path) -> None:
    cert, _ = _pair(tmp_path / "a")
    _, other_key = _pair(tmp_path / "b")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    out = runner.invoke(
        app,
        [
            "node", "start", "--home", str(home), "--no-config", "--engine", "sim",
            "--model", "sim-x", "--port", "1", "--public-url", "https://127.0.0.1:1",
            "--tls-cert", str(cert), "--tls-key", str(other_key),
        ],
    )  # fmt: skip
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "do not match" in out.output and str(cert) in out.output
    said = " ".join(out.output.replace("│", " ").split())
    assert "(a node: llm-mesh node tls init makes a matching pair)" in said, said


def test_registry_serve_hands_uvicorn_the_files_under_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-04: a quoted ``--tls-cert "~/..."`` passed the check, then uvicorn
    took the path literally (FileNotFoundError after start-up began)."""
    import LLM_Mesh.registry.stop_watchdog as watchdog
    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.app import serve

    monkeypatch.setenv("HOME", str(tmp_path))
    _pair(tmp_path / "a")
    given: dict[str, object] = {}
    monkeypatch.setattr(watchdog, "run_bounded", lambda app, budget, **kw: given.update(kw))
    serve(
        Settings(home=tmp_path / "home"), port=_free_port(),
        tls_cert="~/a/node-tls.crt", tls_key="~/a/node-tls.key",
    )  # fmt: skip
    assert given["ssl_certfile"] == str(tmp_path / "a" / "node-tls.crt")
    assert given["ssl_keyfile"] == str(tmp_path / "a" / "node-tls.key")


def _free_port() -> int:
    return free_port()
