"""The ``llm-mesh`` subcommands that live in their own modules, built when named
(``lazy_group.py``): each function imports only its own group's modules."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

import typer

from LLM_Mesh.cli.options import reflow_help

if TYPE_CHECKING:  # typer 0.29 carries its own click
    from typer import _click as click

#: each one's help as the top level's ``--help`` lists it, so that it loads none of them
#: (found 2026-12-06, cli37: it loaded every group to print a line of each);
#: ``tests/cli/test_main.py`` checks each against the command's own help
SUMMARIES = {
    "earnings": "An operator's earnings (micro-NetworkTokens): per day, per model, per node, "
    "and balance.",
    "registry": "Run the registry + gateway (serve) and administer its store: operators, nodes, "
    "API keys, grant, canary.",
    "node": "Run and manage a hosting node.",
    "ledger": "The public ledger of NetworkTokens.",
    "receipt": "Signed receipts of answers.",
}


def _built(name: str, add: Callable[[typer.Typer], object]) -> click.Command:
    """The command ``add`` registers as ``name``, built as ``app.add_typer`` / ``app.command``
    on the top-level app built it (no completion options: those are the top level's)."""
    outer = typer.Typer(add_completion=False)
    add(outer)
    reflow_help(outer)
    built = typer.main.get_command(outer)  # a group of one, or the one command itself
    command: click.Command = getattr(built, "commands", {}).get(name, built)
    return command


@cache
def registry() -> click.Command:
    """``llm-mesh registry ...``: serve, and the admin commands."""
    from LLM_Mesh.cli.admin_commands import (
        grant_command,
        keys_app,
        nodes_app,
        operators_app,
        public_key_command,
    )
    from LLM_Mesh.cli.canary_commands import canary_app
    from LLM_Mesh.cli.negative_args import NegativeArgsCommand
    from LLM_Mesh.cli.quarantine_commands import quarantines_command, usage_audit_command
    from LLM_Mesh.cli.registry_serve import registry_serve

    registry_app = typer.Typer(help=SUMMARIES["registry"], no_args_is_help=True)
    registry_app.add_typer(operators_app, name="operators")
    registry_app.add_typer(nodes_app, name="nodes")
    # "-5" is AMOUNT, refused as such, not an unknown option (found 2026-12-07, money41b);
    # a mistyped option is click's "No such option", not an extra argument (cli42)
    registry_app.command("grant", cls=NegativeArgsCommand)(grant_command)
    registry_app.command("public-key")(public_key_command)
    registry_app.add_typer(keys_app, name="keys")
    registry_app.add_typer(canary_app, name="canary")
    registry_app.command("quarantines")(quarantines_command)
    registry_app.command("usage-audit")(usage_audit_command)
    registry_app.command("serve")(registry_serve)
    return _built("registry", lambda top: top.add_typer(registry_app, name="registry"))


@cache
def node() -> click.Command:
    """``llm-mesh node ...``."""
    from LLM_Mesh.cli.node_commands import node_app

    return _built("node", lambda top: top.add_typer(node_app, name="node"))


@cache
def ledger() -> click.Command:
    """``llm-mesh ledger ...``, ``statement`` included."""
    from LLM_Mesh.cli.ledger_commands import ledger_app
    from LLM_Mesh.cli.ledger_statement import statement_command

    ledger_app.command("statement")(statement_command)
    return _built("ledger", lambda top: top.add_typer(ledger_app, name="ledger"))


@cache
def receipt() -> click.Command:
    """``llm-mesh receipt ...``."""
    from LLM_Mesh.cli.receipt_commands import receipt_app

    return _built("receipt", lambda top: top.add_typer(receipt_app, name="receipt"))


@cache
def earnings() -> click.Command:
    """``llm-mesh earnings``: one command, no group."""
    from LLM_Mesh.cli.earnings_commands import earnings_command

    return _built("earnings", lambda top: top.command("earnings")(earnings_command))
