"""Every ``--help`` prints the bracketed text its source holds (Typer renders help as Rich
markup, where ``[env X]`` or ``[default: no limit]`` is a tag and vanishes unless escaped)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from LLM_Mesh.cli.common import reflow_help
from LLM_Mesh.cli.main import app

runner = CliRunner()
_BRACKETED = re.compile(r"\[[^\[\]\n]*\]")
_LIST_ITEM = re.compile(r"(?:[-*•]|[0-9]{1,3}[.)])\s+\S")  # a list item's line


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group, depth first (Typer's click objects; a group's subcommands
    through ``get_command``: the top level loads its groups when named, lazy_group.py)."""
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        for name in sorted(cmd.list_commands(None)):
            yield from _commands(cmd.get_command(None, name), (*path, name))


def _texts(cmd: Any) -> list[str]:
    texts = [cmd.help or ""]
    texts += [str(getattr(p, "help", None) or "") for p in cmd.params]
    return [t for t in texts if t]


def _literal(text: str) -> str:
    """What the author meant to be printed: ``\\[`` is Rich's escape for ``[``."""
    return inspect.cleandoc(text).replace("\\[", "[")


def _squash(text: str) -> str:
    """Drop Rich's panel borders and re-join wrapped lines."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


ALL = list(_commands(typer.main.get_command(app)))


def test_the_walk_reaches_nested_commands() -> None:
    paths = {p for p, _ in ALL}
    assert ("registry", "keys", "create") in paths
    assert ("ledger", "verify") in paths and ("ask",) in paths


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "llm-mesh" for p, _ in ALL])
def test_help_prints_bracketed_text_literally(path: tuple[str, ...], cmd: Any) -> None:
    out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "240"})
    assert out.exit_code == 0, out.output
    shown = _squash(out.output)
    wanted = [b for t in _texts(cmd) for b in _BRACKETED.findall(_literal(t).split("\f")[0])]
    lost = [b for b in wanted if _squash(b) not in shown]
    assert not lost, f"llm-mesh {' '.join(path)} --help lost {lost}: {shown}"


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "llm-mesh" for p, _ in ALL])
def test_help_paragraphs_are_wrapped_by_the_console(path: tuple[str, ...], cmd: Any) -> None:
    """Typer keeps a docstring's line breaks after its first paragraph: an 80-column
    terminal showed ``ledger verify --help`` as a full line, then "with this", then a full
    line (found 2026-12-04). Each paragraph is one line now, for the console to wrap."""
    shown = (cmd.help or "").split("\f")[0]
    for p in shown.split("\n\n"):  # a line break only before a list's item
        assert all(_LIST_ITEM.match(ln) for ln in p.split("\n")[1:]), shown


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "llm-mesh" for p, _ in ALL])
def test_help_shows_no_restructuredtext_double_backticks(path: tuple[str, ...], cmd: Any) -> None:
    """Found 2026-12-04: ``registry grant --help`` printed "a ledger entry of kind ``grant``"."""
    out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "240"})
    assert out.exit_code == 0, out.output
    assert "``" not in out.output, out.output


def test_version_prints_the_installed_version() -> None:
    """Found 2026-12-04: ``llm-mesh --version`` was "No such option"."""
    from importlib.metadata import version

    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"llm-mesh {version('llm-mesh')}"


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "llm-mesh" for p, _ in ALL])
def test_help_cuts_nothing_at_80_columns(path: tuple[str, ...], cmd: Any) -> None:
    """Found 2026-12-04: at 80 columns ``registry serve --help`` and ``node start --help``
    read "--allow-private-n…", "LLM_MESH_DATABASE…", "$LLM_MESH_HOME/node…": a
    ``--verbose/--no-verbose`` pair and an ``<int range> [x>=0]`` type took the width."""
    out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "…" not in out.output, out.output


def _listing_app() -> typer.Typer:
    demo = typer.Typer(rich_markup_mode="rich")

    @demo.command()
    def steps() -> None:
        """Set a node up in steps:
        1. make its key
        2. start it, with ``--registry`` naming
           the registry it joins

        What it checks:

        - the key file's mode, which must
          be 0600
        * the registry's answer
        • its own models

        A closing paragraph that is long enough to be wrapped by the console,
        not by the source's line breaks.
        """

    @demo.command()
    def other() -> None:
        """Another."""

    reflow_help(demo)
    return demo


def test_help_keeps_each_list_item_on_its_own_line() -> None:
    """``reflow_help`` joins a paragraph's lines into one; a bullet or numbered list's items
    keep their own lines (an item's continued lines joined into it), in the first
    paragraph too (Typer joins that one's lines itself)."""
    out = runner.invoke(_listing_app(), ["steps", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = [" ".join(re.sub(r"[│╭╮╰╯─]", " ", ln).split()) for ln in out.output.splitlines()]
    for item in (
        "1. make its key",
        "2. start it, with `--registry` naming the registry it joins",
        "- the key file's mode, which must be 0600",
        "* the registry's answer",
        "• its own models",
    ):
        assert item in lines, out.output
    assert "Set a node up in steps:" in lines, out.output
    assert any(
        ln.startswith("A closing paragraph that is long enough to be wrapped by the console, not")
        for ln in lines
    ), out.output


def test_every_engine_option_says_sim_is_simulated() -> None:
    # found 2026-12-06 (newuser37): `up`, `demo` and `node start --help` listed
    # "llama-cpp | openai | sim" with nothing saying the sim engine's answers are made up
    engines = [(p, c) for p, c in ALL if any(q.name == "engine" for q in c.params)]
    assert {p for p, _ in engines} >= {("up",), ("demo",), ("node", "start")}
    for path, _ in engines:
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "240"})
        assert out.exit_code == 0, out.output
        assert "sim (SIMULATED: made-up answers" in _squash(out.output), path


def test_nodes_trust_and_untrust_say_what_each_does() -> None:
    """``registry nodes untrust`` (cli42) beside ``trust``, each one line in ``nodes
    --help`` saying what it does to a canary verifier, and its own ``--help``."""
    out = runner.invoke(app, ["registry", "nodes", "--help"], env={"COLUMNS": "240"})
    said = _squash(out.output)
    assert out.exit_code == 0 and "trust Mark a node as a canary verifier" in said, said
    assert "untrust Unmark a canary verifier" in said, said
    out = runner.invoke(app, ["registry", "nodes", "untrust", "--help"], env={"COLUMNS": "240"})
    said = _squash(out.output)
    assert out.exit_code == 0 and "node_id" in said and "registry nodes trust" in said, said
    assert "its answers are no longer the references" in said, said
