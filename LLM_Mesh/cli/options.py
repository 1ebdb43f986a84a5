"""What the ``llm-mesh`` entry point needs before it knows the command: the consoles, the
options ``main.py``'s own commands declare, ``--version``, the help reflow. Light on purpose
(found 2026-12-06, speed36: ``llm-mesh --version`` imported pydantic, starlette, httpx and
cryptography through ``common.py``): this module imports only typer and rich; what a
command needs beyond it, the command imports when it runs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from LLM_Mesh.config import ENGINES

console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="State directory \\[env LLM_MESH_HOME, default ~/.llm-mesh]"),
]


def _engine_name(value: str) -> str:
    """``--engine`` checked before anything starts (``up`` used to start the registry first)."""
    if value not in ENGINES:
        raise typer.BadParameter(f"must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


ENGINE_HELP = "llama-cpp | openai | sim (SIMULATED: made-up answers, for tests and benchmarks)"
EngineOpt = Annotated[str, typer.Option(help=ENGINE_HELP, callback=_engine_name)]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL, or several replicas as URL,URL,... (tried in turn) "
        "\\[env LLM_MESH_REGISTRY_URL]",
    ),
]


RegistryCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        help="CA file (PEM) to trust for an https registry besides the system's "
        "\\[env LLM_MESH_REGISTRY_CA]",
    ),
]


# a bullet ("- ", "* ", "• ") or numbered ("1. ", "2) ") list item starting a line
_LIST_ITEM = re.compile(r"(?:[-*•]|[0-9]{1,3}[.)])\s+\S")


def _reflowed(paragraph: str) -> str:
    """A help paragraph as one line, but for its list items: one line each (an item's
    continued lines joined into it; found 2026-12-04: ``reflow_help`` ran a list into one
    line). ``grant`` (reStructuredText, for the docs) as `grant` (found 2026-12-04:
    ``--help`` showed the double backticks)."""
    lines: list[str] = []
    for line in paragraph.replace("``", "`").split("\n"):
        text = " ".join(line.split())
        if not text:
            continue
        if lines and not _LIST_ITEM.match(text):
            lines[-1] += " " + text
        else:
            lines.append(text)
    return "\n".join(lines)


def reflow_help(app: typer.Typer) -> None:
    """Each command's help (its docstring) as paragraphs of one line (a list: one line an
    item), for the console to wrap: Typer keeps the source's line breaks after the first
    paragraph, so a terminal narrower than the source's lines showed ``--help`` ragged (a
    line of 80 characters then one of two words)."""
    for info in app.registered_commands:
        text = info.help if info.help is not None else inspect.getdoc(info.callback)
        if text:
            head, cut, tail = inspect.cleandoc(text).partition("\f")  # after \f: not shown
            paragraphs = [_reflowed(p) for p in head.split("\n\n")]
            paragraphs = [p for p in paragraphs if p]
            if paragraphs:  # Typer joins the first paragraph's lines: its list goes after it
                first, _, items = paragraphs[0].partition("\n")
                paragraphs[:1] = [first, items] if items else [first]
            info.help = "\n\n".join(paragraphs) + cut + tail
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def version_callback(value: bool) -> None:
    """``--version``: the installed package's version (its metadata), then exit."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("llm-mesh")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from LLM_Mesh import __version__ as installed
    console.print(f"llm-mesh {installed}", markup=False, highlight=False)
    raise typer.Exit()
