"""An operator token or the admin key given where an API key goes is said, before it is
sent (found 2026-12-05, newuser32: ``llm-mesh ask hi --api-key lmo_...`` went to the
gateway and came back ``incorrect API key provided: lmo_...``, which did not say that
``lmo_`` is a node operator's credential and a user's key is ``lmk_...``, made by
``llm-mesh registry keys create``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app

runner = CliRunner()
NOWHERE = "http://127.0.0.1:9"  # nothing may be asked: the refusal comes first

OPERATOR = "lmo_" + "a" * 43
ADMIN = "lma_" + "b" * 43


@pytest.mark.parametrize(("secret", "what"), [(OPERATOR, "operator token"), (ADMIN, "admin key")])
@pytest.mark.parametrize(
    ("args", "by_env"),
    [(["ask", "hi"], False), (["balance"], False), (["ask", "hi"], True), (["balance"], True)],
)
def test_a_credential_of_another_kind_is_not_sent_as_an_api_key(
    secret: str, what: str, args: list[str], by_env: bool
) -> None:
    env = {"COLUMNS": "300", "LLM_MESH_REGISTRY_URL": NOWHERE}
    if by_env:
        env["LLM_MESH_API_KEY"] = secret
        argv = args
    else:
        argv = [*args, "--api-key", secret]
    out = runner.invoke(app, argv, env=env)
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
    named = "LLM_MESH_API_KEY" if by_env else "--api-key"
    assert said.startswith(f"error: {named}: "), said
    assert what in said and "lmk_" in said and "llm-mesh registry keys create" in said, said
    assert secret not in said and "no LLM Mesh registry answered" not in said, said


def test_an_api_key_is_still_sent() -> None:
    out = runner.invoke(
        app, ["balance", "--api-key", "lmk_" + "c" * 44],
        env={"COLUMNS": "300", "LLM_MESH_REGISTRY_URL": NOWHERE},
    )  # fmt: skip
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and "no LLM Mesh registry answered" in said, said


def test_a_command_that_sends_no_api_key_ignores_the_variable() -> None:
    out = runner.invoke(
        app, ["status"],
        env={"COLUMNS": "300", "LLM_MESH_REGISTRY_URL": NOWHERE, "LLM_MESH_API_KEY": OPERATOR},
    )  # fmt: skip
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and "no LLM Mesh registry answered" in said, said
