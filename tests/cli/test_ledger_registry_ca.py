"""``llm-mesh ledger verify`` and ``ledger witness`` trust the registry's CA file as the
other commands do (``--registry-ca``, ``LLM_MESH_REGISTRY_CA``): found following
docs/deploy.md ("Checking a deployment") against a balancer with a private CA, where
``ledger verify --registry https://...`` failed ``CERTIFICATE_VERIFY_FAILED`` whatever was
set. A real https server (stdlib, a self-signed certificate) answers every path 404: the
commands must get past the handshake and read that answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.cli.registry_404 import serve_https

runner = CliRunner()


@pytest.fixture
def https_registry(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    with serve_https(tmp_path) as served:
        yield served


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("command", [["ledger", "verify"], ["ledger", "witness"]])
def test_ledger_commands_trust_the_registry_ca(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], how: str, command: list[str]
) -> None:
    url, cert, paths = https_registry
    args = [*command, "--registry", url, "--home", str(tmp_path / "home")]
    env = {"COLUMNS": "200"}
    if how == "flag":
        args += ["--registry-ca", str(cert)]
    else:
        env["LLM_MESH_REGISTRY_CA"] = str(cert)
    out = runner.invoke(app, args, env=env)
    said = " ".join(out.output.split())
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert paths, said  # the request reached the registry past TLS
    # it answered 404: verify says so; a witness finds nothing signed to cosign yet
    assert out.exit_code == (1 if command[1] == "verify" else 0), said


def test_without_the_ca_the_self_signed_registry_is_refused(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, _, paths = https_registry
    args = ["ledger", "verify", "--registry", url, "--home", str(tmp_path / "home")]
    out = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in " ".join(out.output.split())
    assert not paths


@pytest.mark.parametrize("how", ["flag", "env"])
def test_receipt_verify_trusts_the_registry_ca(
    https_registry: tuple[str, Path, list[str]], how: str
) -> None:
    """Found 2026-12-03: ``receipt verify`` fetched the keys with the system's CAs only (no
    ``--registry-ca``, ``LLM_MESH_REGISTRY_CA`` ignored): CERTIFICATE_VERIFY_FAILED."""
    url, cert, paths = https_registry
    args = ["receipt", "verify", "-", "--registry", url]
    env = {"COLUMNS": "200"}
    if how == "flag":
        args += ["--registry-ca", str(cert)]
    else:
        env["LLM_MESH_REGISTRY_CA"] = str(cert)
    out = runner.invoke(app, args, env=env, input="{}")
    said = " ".join(out.output.split())
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert paths == ["/v1/ledger/keys"], said
    assert out.exit_code == 1 and "answered 404" in said  # the 404, past TLS


@pytest.mark.parametrize(
    "command",
    [["ledger", "verify"], ["ledger", "witness"], ["ledger", "statement", "--account", "user:a"],
     ["receipt", "verify", "-"]],
    ids=["verify", "witness", "statement", "receipt-verify"],
)  # fmt: skip
def test_an_untrusted_certificate_names_the_ca_option_not_a_missing_registry(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str]
) -> None:
    """Found 2026-12-06 (cli36): a certificate that failed verification was said as "no LLM
    Mesh registry answered ... is a registry running at URL?" (failed before: those words,
    beside CERTIFICATE_VERIFY_FAILED); a registry was running, its CA was not given. Now:
    the host, and the CA option to give."""
    url, _, paths = https_registry
    args = [*command, "--registry", url, "--home", str(tmp_path / "home")]
    out = runner.invoke(app, args, env={"COLUMNS": "300", "LLM_MESH_REGISTRY_CA": ""}, input="{}")
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and not paths, said
    assert "CERTIFICATE_VERIFY_FAILED" in said, said
    assert "is a registry running" not in said and "no LLM Mesh registry answered" not in said
    assert "the TLS certificate of 127.0.0.1 is not trusted here" in said, said
    assert "--registry-ca FILE" in said, said
