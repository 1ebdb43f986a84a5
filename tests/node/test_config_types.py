"""node.toml with a value of the wrong type: one clear error naming the key, the type it
takes and the file (found 2026-12-04: ``port = "abc"`` said "'<' not supported between
instances of 'int' and 'str'", ``models = 5`` "object of type 'int' has no len()", and
``max_queue = 1.5`` or ``register = "yes"`` started a node)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.node.config import load_node_config


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('port = "abc"', "port must be a whole number, got 'abc' (a string)"),
        ("max_queue = 1.5", "max_queue must be a whole number, got 1.5 (a number)"),
        ('register = "yes"', "register must be true or false, got 'yes' (a string)"),
        ("models = 5", "models must be a string or a list of strings, got 5 (a whole number)"),
        ("models = [1, 2]", "models must be a string or a list of strings"),
        ("region = 3", "region must be a string, got 3 (a whole number)"),
        ("n_threads = true", "n_threads must be a whole number, got true (true or false)"),
        ("sim_ttft_s = [0.1]", "sim_ttft_s must be a number, got [0.1] (a list)"),
    ],
)
def test_a_wrong_type_names_the_key_the_type_and_the_file(
    tmp_path: Path, line: str, said: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(line + "\n")
    with pytest.raises(ValueError) as caught:
        load_node_config(path)
    assert str(caught.value).startswith(f"{path}: "), caught.value
    assert said in str(caught.value)


def test_right_types_still_load(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('port = 8802\nsim_ttft_s = 1\nmodels = "gemma-3-270m"\nregister = false\n')
    cfg = load_node_config(path)
    assert (cfg.port, cfg.sim_ttft_s, cfg.models, cfg.register) == (
        8802,
        1,
        ["gemma-3-270m"],
        False,
    )


def test_a_bad_value_names_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("port = 70000\n")
    with pytest.raises(ValueError, match=r"node\.toml: port must be between 1 and 65535"):
        load_node_config(path)


def test_node_start_says_it_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "node.toml").write_text('port = "abc"\n')
    out = CliRunner().invoke(
        app, ["node", "start", "--home", str(home), "--engine", "sim"], env={"COLUMNS": "80"}
    )
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    assert "port must be a whole number" in out.output and "node.toml" in out.output
