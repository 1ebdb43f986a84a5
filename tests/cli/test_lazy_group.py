"""``LazyGroup``: subcommands imported when named; listed, helped and suggested as before."""

from __future__ import annotations

from typing import Any, ClassVar

import typer
from typer.testing import CliRunner

from LLM_Mesh.cli.lazy_group import LazyGroup, load

LOADED: list[str] = []
runner = CliRunner()


def _built(name: str) -> Any:
    LOADED.append(name)
    sub = typer.Typer(help=f"The {name} group.")

    @sub.callback()
    def _cb() -> None: ...

    @sub.command("go")
    def go() -> None:
        typer.echo(f"{name} went")

    return typer.main.get_command(sub)


def alpha() -> Any:
    return _built("alpha")


def beta() -> Any:
    return _built("beta")


class _Group(LazyGroup):
    lazy: ClassVar[dict[str, str]] = {
        "alpha": f"{__name__}:alpha",
        "beta": f"{__name__}:beta",
    }
    order = ("beta", "own", "alpha")


def _app() -> typer.Typer:
    app = typer.Typer(cls=_Group, add_completion=False)

    @app.command("own")
    def own() -> None:
        typer.echo("own ran")

    @app.callback()
    def _cb() -> None: ...

    return app


def test_load_builds_the_named_command() -> None:
    LOADED.clear()
    assert list(load(f"{__name__}:alpha").commands) == ["go"]  # type: ignore[attr-defined]
    assert LOADED == ["alpha"]


def test_only_the_named_group_loads() -> None:
    LOADED.clear()
    out = runner.invoke(_app(), ["alpha", "go"])
    assert out.exit_code == 0, out.output
    assert out.output == "alpha went\n"
    assert LOADED == ["alpha"]
    LOADED.clear()
    assert runner.invoke(_app(), ["own"]).output == "own ran\n"
    assert LOADED == []


def test_help_lists_all_in_order_with_their_help() -> None:
    LOADED.clear()
    out = runner.invoke(_app(), ["--help"], env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    assert out.output.index("beta") < out.output.index("own") < out.output.index("alpha")
    assert "The alpha group." in out.output and "The beta group." in out.output
    assert sorted(LOADED) == ["alpha", "beta"]


def test_a_mistyped_name_is_suggested_from_all() -> None:
    out = runner.invoke(_app(), ["alpah"])
    assert out.exit_code == 2
    assert "Did you mean 'alpha'?" in out.output


class _Summarised(_Group):
    summaries: ClassVar[dict[str, str]] = {"alpha": "The alpha group."}


def test_help_lists_a_summarised_command_without_loading_it() -> None:
    """Found 2026-12-06 (cli37): ``--help`` loaded every group to print one line of each.
    With a summary it loads none (``beta``, without one, still loads to be listed); the
    command named after that is the real one, not the summary's stand-in."""
    app = typer.Typer(cls=_Summarised, add_completion=False)
    app.command("own")(lambda: None)
    app.callback()(lambda: None)
    LOADED.clear()
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    assert "The alpha group." in out.output and "The beta group." in out.output
    assert LOADED == ["beta"]  # (failed before: alpha too)
    assert runner.invoke(app, ["alpha", "go"]).output == "alpha went\n"


def test_a_mistyped_name_loads_none() -> None:
    """Found 2026-12-06 (cli38): a mistyped name loaded every group for "did you mean" to
    compare it with (``llm-mesh regsitry``: ~500 modules). It is compared with the names."""
    LOADED.clear()
    out = runner.invoke(_app(), ["alpah"])
    assert out.exit_code == 2
    assert "No such command 'alpah'. Did you mean 'alpha'?" in out.output
    assert LOADED == []  # (failed before: alpha and beta)
    out = runner.invoke(_app(), ["zzz"])
    assert out.exit_code == 2 and "Did you mean" not in out.output
    assert LOADED == []


def _complete(words: str) -> tuple[str, list[str]]:
    """What zsh's completion of ``words`` prints, and the groups it loaded."""
    app = typer.Typer(cls=_Summarised)  # completion on, as the real app has it
    app.command("own", help="Own command.")(lambda: None)
    app.callback()(lambda: None)
    LOADED.clear()
    env = {"_TOOL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": words}
    out = runner.invoke(app, [], prog_name="tool", env=env)
    assert out.exit_code == 0, out.output
    return out.output, list(LOADED)


def test_completion_of_the_names_loads_none_with_a_summary() -> None:
    """Found 2026-12-06 (cli38): completing ``llm-mesh re`` loaded each group it matched
    (``llm-mesh `` all of them) to say its one line of help; the summary says it now."""
    shown, loaded = _complete("tool a")
    assert '"alpha":"The alpha group."' in shown
    assert loaded == []  # (failed before: alpha)
    shown, loaded = _complete("tool ")
    assert all(f'"{n}"' in shown for n in ("alpha", "beta", "own"))
    assert loaded == ["beta"]  # no summary: loaded to say its help (failed before: alpha too)


def test_completion_inside_a_group_loads_that_group_only() -> None:
    shown, loaded = _complete("tool alpha ")
    assert '"go"' in shown
    assert loaded == ["alpha"]
    shown, loaded = _complete("tool alpah ")  # a mistyped group: the names again
    assert '"go"' not in shown and '"alpha":"The alpha group."' in shown
    assert loaded == ["beta"]  # no summary (failed before: alpha too)
