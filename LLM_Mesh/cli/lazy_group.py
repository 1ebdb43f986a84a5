"""A command group whose subcommands are imported only when named (found 2026-12-06,
speed36: ``llm-mesh --version`` took 13-18 s on a loaded box, most of it importing every
subcommand's module: pydantic, starlette, httpx, cryptography for a version string).

``lazy`` names each subcommand's loader as ``"module:function"`` (a string, so nothing is
imported to list it); the function returns the click command. ``--help`` shows each one's
summary from ``summaries`` (a stand-in command carrying it, found 2026-12-06, cli37:
``--help`` loaded every group to print one line of each; ``tests/cli/test_main.py`` checks
the table against the groups' own help); a mistyped name (whose "did you mean" compares all
names) loads them all; any other command line loads the one it names."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer 0.29 carries its own click
    from typer import _click as click


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
    _listing = False  # formatting --help: a summary stands in for a command not loaded

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

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
        if cmd_name in self.lazy:
            self._load(cmd_name)
        elif cmd_name not in self.commands:  # an unknown name: "did you mean" sees them all
            for name in self.lazy:
                self._load(name)
        return super().get_command(ctx, cmd_name)
