"""A command group whose subcommands are imported only when named (found 2026-12-06,
speed36: ``llm-mesh --version`` took 13-18 s on a loaded box, most of it importing every
subcommand's module: pydantic, starlette, httpx, cryptography for a version string).

``lazy`` names each subcommand's loader as ``"module:function"`` (a string, so nothing is
imported to list it); the function returns the click command. ``--help`` shows each one's
summary from ``summaries`` (a stand-in command carrying it, found 2026-12-06, cli37:
``--help`` loaded every group to print one line of each; ``tests/cli/test_main.py`` checks
the table against the groups' own help). A mistyped name loads none: "did you mean" compares
it with every name, the lazy ones included (found 2026-12-06, cli38: it loaded them all, ~500
modules); shell completion of the names lists the summaries too, and completion inside a
group loads that group only; any other command line loads the one it names."""

from __future__ import annotations

import importlib
from difflib import get_close_matches
from typing import TYPE_CHECKING, ClassVar

from typer._click.exceptions import UsageError  # typer 0.29 carries its own click
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer import _click as click
    from typer._click.shell_completion import CompletionItem


def load(spec: str) -> click.Command:
    """The command that ``"module:function"`` builds."""
    module, _, function = spec.partition(":")
    command: click.Command = getattr(importlib.import_module(module), function)()
    return command


class LazyGroup(TyperGroup):
    """A :class:`TyperGroup` plus the subcommands in ``lazy``, listed in ``order``."""

    lazy: ClassVar[dict[str, str]] = {}
    order: ClassVar[tuple[str, ...]] = ()
    #: each lazy subcommand's help as ``--help`` lists it (one not here is loaded to list it)
    summaries: ClassVar[dict[str, str]] = {}
    _listing = False  # --help or completion: a summary stands in for a command not loaded

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The names that start with ``incomplete``, each with its summary: loads none."""
        self._listing = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self._listing = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As typer's, but "did you mean" compares a mistyped name with every name, the lazy
        ones (not loaded) included: typer's compares it with the loaded ones only."""
        suggest, self.suggest_commands = self.suggest_commands, False
        try:
            return super().resolve_command(ctx, args)
        except UsageError as e:
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if suggest and matches:
                guesses = ", ".join(f"{m!r}" for m in matches)
                e.message = f"{e.message.rstrip('.')}. Did you mean {guesses}?"
            raise
        finally:
            self.suggest_commands = suggest

    def _load(self, name: str) -> None:
        if name not in self.commands and name in self.lazy:
            self.add_command(load(self.lazy[name]), name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]
        rank = {n: i for i, n in enumerate(self.order)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._listing and cmd_name in self.summaries and cmd_name not in self.commands:
            return TyperCommand(cmd_name, help=self.summaries[cmd_name])  # never run
        self._load(cmd_name)
        return super().get_command(ctx, cmd_name)
