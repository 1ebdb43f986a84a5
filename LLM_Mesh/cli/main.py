"""The ``llm-mesh`` command: parse, build settings, call. No logic lives here.

The app and its commands: ``up`` and ``demo`` in ``local_commands.py``; ``ask``,
``status``, ``models`` and ``balance`` in ``network_commands.py``; ``simulate`` and
``migrate`` in ``tool_commands.py`` (none imports more than this module did: their
helpers' modules load when called, ``deferred.py``); the groups (``registry``, ``node``,
``ledger``, ``receipt``) and ``earnings`` load when named (``subcommands.py``). A new
command goes in the module of its kind, or a module of its own, not here (words44: this
file had grown to 599 lines).

llm-mesh up | demo                 the local network (registry + one node)
llm-mesh registry serve            the registry + gateway
llm-mesh registry operators|nodes  admin: operator credentials, revocation
llm-mesh registry grant ACCOUNT N  admin: N micro-NetworkTokens from the mint (a ledger entry)
llm-mesh ledger verify             check the public ledger (hashes, signatures, balances)
llm-mesh receipt verify FILE|-     check an answer's signed receipt offline
llm-mesh earnings                  an operator's earnings (per day, model, node) and balance
llm-mesh registry keys             admin: client API keys (limits, priority, regions)
llm-mesh registry public-key       the gateway's key, for nodes to pin (registry_public_key)
llm-mesh node start                a node
llm-mesh ask PROMPT                ask the network
llm-mesh status | models           what is up
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, ClassVar

import typer

from LLM_Mesh import error_pipe
from LLM_Mesh.cli.lazy_group import LazyGroup
from LLM_Mesh.cli.local_commands import demo, up
from LLM_Mesh.cli.network_commands import ask, balance, models, status
from LLM_Mesh.cli.options import reflow_help, version_callback
from LLM_Mesh.cli.subcommands import SUMMARIES
from LLM_Mesh.cli.tool_commands import SIMULATE_CONTEXT, migrate, simulate


class _Commands(LazyGroup):
    """The subcommands with modules of their own load when named: ``--version``, ``ask``,
    ``status`` import none of them (found 2026-12-06, speed36)."""

    lazy: ClassVar[dict[str, str]] = {
        name: f"LLM_Mesh.cli.subcommands:{name}"
        for name in ("earnings", "registry", "node", "ledger", "receipt")
    }
    summaries = SUMMARIES  # what ``--help`` lists for each, loading none (cli37)
    # ``--help``'s order as it was when all were registered here
    order = ("earnings", "up", "demo", "ask", "status", "models", "balance", "simulate",
             "migrate", "registry", "node", "ledger", "receipt")  # fmt: skip


app = typer.Typer(
    help="Free-S_Code LLM Mesh: models hosted by community nodes.",
    no_args_is_help=True,
    cls=_Commands,
)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Free-S_Code LLM Mesh: models hosted by community nodes."""


for command in (up, demo, ask, status, models, balance, migrate):
    app.command()(command)
app.command(context_settings=SIMULATE_CONTEXT)(simulate)
reflow_help(app)  # every command is registered by now


def main() -> None:
    error_pipe.take_from(os.environ)  # ``up``'s child: its one-line error goes there too
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
