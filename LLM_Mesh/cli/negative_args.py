"""A command whose arguments may be negative numbers (``registry grant pool -5``), every
other word that starts with ``-`` an option, as click takes it everywhere else.

Click reads ``-5`` as the short option ``-5`` ("No such option: -5"). ``registry grant``
took it as AMOUNT by ignoring unknown options (money41b), which made any mistyped option
an argument: ``registry grant pool 5 --xyz`` said "Got unexpected extra argument (--xyz)"
(found 2026-12-07, cli42), not click's "No such option: --xyz". Here only a word that is a
whole negative integer is an argument; the rest is click's own parsing (an option's value
that looks like one, ``--id -5``, is still the option's)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from typer.core import TyperCommand

if TYPE_CHECKING:  # typer 0.29 carries its own click
    from typer import _click as click
    from typer._click.parser import _OptionParser, _ParsingState

__all__ = ["NegativeArgsCommand"]

_NEGATIVE = re.compile(r"-[0-9]+")


class NegativeArgsCommand(TyperCommand):
    """A Typer command whose parser takes a negative integer for an argument."""

    def make_parser(self, ctx: click.Context) -> _OptionParser:
        parser = super().make_parser(ctx)
        process_opts = parser._process_opts

        def opts_or_negative(arg: str, state: _ParsingState) -> None:
            if _NEGATIVE.fullmatch(arg):
                state.largs.append(arg)
            else:
                process_opts(arg, state)

        parser._process_opts = opts_or_negative  # type: ignore[method-assign]
        return parser
