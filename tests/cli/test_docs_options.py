"""Every ``llm-mesh`` option the operator docs name exists (docs/deploy.md, docs/operations.md).

Walked on 2026-12-05 as an operator would: a command there that names an option the CLI does
not have fails as written. Two checks: each ``llm-mesh CMD ... --opt`` written out (a code
block's line, a backtick span) names options of that very command; any other ``--opt`` in the
text is an option of some ``llm-mesh`` command, or of another tool the docs run (listed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from LLM_Mesh.cli.main import app

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["deploy.md", "operations.md"]
# other tools' options the pages run: pg_restore, curl, useradd, systemctl, setup-node-operator.sh
FOREIGN = {"--cacert", "--resolve", "--exit-on-error", "--no-owner", "--home-dir", "--shell"}
FOREIGN |= {"--system", "--now", "--user", "--service"}

_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# ``llm-mesh`` then its words, up to where a shell command or a span ends
_COMMAND = re.compile(r"llm-mesh((?: [a-z][a-z-]*)+)([^`\n|;&#]*)")


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = {path: cmd for path, cmd in _walk(typer.main.get_command(app))}


def _options(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}


ALL_OPTIONS = set().union(*(_options(c) for c in COMMANDS.values()))


def _joined(text: str) -> str:
    """Shell lines continued with a backslash read as one."""
    return re.sub(r"\\\n\s*", " ", text)


def unknown_in_commands(text: str) -> list[str]:
    """``llm-mesh CMD ... --opt`` where CMD has no ``--opt``: ``"CMD --opt"`` each."""
    bad = []
    for m in _COMMAND.finditer(_joined(text)):
        words = m.group(1).split()
        path: tuple[str, ...] = ()
        for word in words:
            if (*path, word) not in COMMANDS:
                break
            path = (*path, word)
        if not path or getattr(COMMANDS[path], "commands", None):
            continue  # prose ("llm-mesh is not executable"), or a group named alone
        rest = " ".join(words[len(path) :]) + m.group(2)
        known = _options(COMMANDS[path])
        bad += [f"{' '.join(path)} {o}" for o in _OPTION.findall(rest) if o not in known]
    return bad


def unknown_anywhere(text: str) -> list[str]:
    return sorted({o for o in _OPTION.findall(text) if o not in ALL_OPTIONS | FOREIGN})


def test_the_checks_find_a_missing_option() -> None:
    """Each check names what a page would get wrong (so a pass means something)."""
    text = "run `llm-mesh registry serve --port 1 --no-such-flag` or\n"
    text += "llm-mesh ask --registry R \\\n    --nope2 hi\n`registry serve --other-missing`"
    assert unknown_in_commands(text) == ["registry serve --no-such-flag", "ask --nope2"]
    assert unknown_anywhere(text) == ["--no-such-flag", "--nope2", "--other-missing"]
    # an option of another command of the CLI is one that exists, but not for this one
    assert unknown_in_commands("`llm-mesh ask --workers 2`") == ["ask --workers"]


@pytest.mark.parametrize("page", PAGES)
def test_every_option_a_page_names_exists(page: str) -> None:
    text = (DOCS / page).read_text()
    assert unknown_in_commands(text) == []
    assert unknown_anywhere(text) == []
