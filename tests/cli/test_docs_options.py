"""Every ``llm-mesh`` option the operator docs name exists (docs/deploy.md, docs/operations.md,
README.md, docs/dashboard.md, docs/simulator.md), and every ``LLM_MESH_*`` variable is documented.

Walked on 2026-12-05 as an operator would: a command there that names an option the CLI does
not have fails as written. Two checks: each ``llm-mesh CMD ... --opt`` written out (a code
block's line, a backtick span) names options of that very command (``simulate``'s are its
argparse parser's; ``./setup-node-operator.sh ... --opt``: the script's own, read from its
``case``); any other ``--opt`` in the text is an option of some ``llm-mesh`` command, of the
setup script, or of another tool the docs run (listed). docs/ARCHITECTURE.md and
docs/security.md get the first check only (they name benchmark scripts' options too).

The variables (docs32, 2026-12-05): each ``LLM_MESH_*`` the package reads is named in the
docs, as is each one a test reads from the environment (what one sets to run them), and
each one the docs name is read by the package, a test, a benchmark or a script (found then:
``LLM_MESH_TEST_PG_PREFIX``, ``LLM_MESH_TEST_REDIS_URL`` and ``LLM_MESH_REQUIRE_REDIS`` were
nowhere in the docs).

The defaults (docs35, 2026-12-06): each number ``config.py``'s table of settings says first
is what ``Settings`` holds with nothing set, and each "`LLM_MESH_X` ..., default N" in the
docs is too (a unit after it read: ``80 s``, ``24 h``, ``1 MiB``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from LLM_Mesh.cli.main import app
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.simulator.cli import _parser as simulate_parser

REPO = Path(__file__).resolve().parents[2]
PAGES = ["docs/deploy.md", "docs/operations.md", "README.md", "docs/dashboard.md"]
PAGES += ["docs/simulator.md"]
COMMANDS_ONLY = ["docs/ARCHITECTURE.md", "docs/security.md"]  # the first check only
# the setup script's options: its ``case`` arms (``--yes|-y)``)
SCRIPT_OPTIONS = set(
    re.findall(
        r"(?m)^\s*(?:-\w\|)?(--[a-z][a-z-]*)(?:\|-\w)?\)",
        (REPO / "setup-node-operator.sh").read_text(),
    )
)
# other tools' options the pages run: pg_restore, curl, useradd, systemctl
FOREIGN = {"--cacert", "--resolve", "--exit-on-error", "--no-owner", "--home-dir", "--shell"}
FOREIGN |= {"--system", "--now", "--user", "--service", "--help"} | SCRIPT_OPTIONS

_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# ``llm-mesh`` then its words, up to where a shell command or a span ends
_COMMAND = re.compile(r"llm-mesh((?: [a-z][a-z-]*)+)([^`\n|;&#]*)")


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd  # a group's subcommands through get_command: loaded when named
    for name in cmd.list_commands(None) if hasattr(cmd, "list_commands") else ():
        yield from _walk(cmd.get_command(None, name), (*path, name))


COMMANDS = {path: cmd for path, cmd in _walk(typer.main.get_command(app))}
# ``simulate`` passes its arguments on to the simulator's own parser
SIMULATE = {o for a in simulate_parser()._actions for o in a.option_strings if o.startswith("--")}


def _options(cmd: Any) -> set[str]:
    own = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}
    return own | (SIMULATE if cmd is COMMANDS[("simulate",)] else set())


ALL_OPTIONS = set().union(*(_options(c) for c in COMMANDS.values()))
_SCRIPT = re.compile(r"setup-node-operator\.sh([^`\n|;&#]*)")


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
    for m in _SCRIPT.finditer(_joined(text)):
        bad += [f"setup-node-operator.sh {o}" for o in _OPTION.findall(m.group(1))
                if o not in SCRIPT_OPTIONS]  # fmt: skip
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
    # the simulator's own options are ``simulate``'s; the setup script's are its own
    assert unknown_in_commands("`llm-mesh simulate --seed 1 --no-seed`") == ["simulate --no-seed"]
    script = "./setup-node-operator.sh --yes --models a --no-such"
    assert unknown_in_commands(script) == ["setup-node-operator.sh --no-such"]
    assert "--skip-install" in SCRIPT_OPTIONS and "--yes" in SCRIPT_OPTIONS


@pytest.mark.parametrize("page", PAGES)
def test_every_option_a_page_names_exists(page: str) -> None:
    text = (REPO / page).read_text()
    assert unknown_in_commands(text) == []
    assert unknown_anywhere(text) == []


@pytest.mark.parametrize("page", COMMANDS_ONLY)
def test_every_command_a_page_writes_out_has_its_options(page: str) -> None:
    assert unknown_in_commands((REPO / page).read_text()) == []


_VARIABLE = re.compile(r"LLM_MESH_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])")
DOC_FILES = [*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "benchmarks" / "README.md"]
# where a variable may be read besides the package: tests, benchmarks, scripts, CI, Makefile
READERS = ["tests", "benchmarks", "scripts", ".ci"]


def _variables(paths: list[Path]) -> set[str]:
    return {v for p in paths for v in _VARIABLE.findall(p.read_text(errors="replace"))}


def package_variables() -> set[str]:
    """What the package reads: the names written out, and ``LLM_MESH_MAX_*`` (one per
    request limit, made from its field's name in ``config.py``)."""
    read = _variables(sorted((REPO / "LLM_Mesh").rglob("*.py")))
    return read | {f"LLM_MESH_{f.upper()}" for f in RequestLimits.__dataclass_fields__}


def test_the_variable_checks_find_a_missing_one() -> None:
    # a name's start in an f-string (``LLM_MESH_MAX_{...}``) is no variable
    found = _VARIABLE.findall("`LLM_MESH_HOME` LLM_MESH_MAX_{name} LLM_MESH_X_1=")
    assert found == ["LLM_MESH_HOME", "LLM_MESH_X_1"]
    assert "LLM_MESH_MAX_STOP_CHARS" in package_variables()
    assert "LLM_MESH_MAX_N" in package_variables()


def test_every_variable_the_package_reads_is_documented() -> None:
    documented = _variables(DOC_FILES)
    assert sorted(package_variables() - documented) == []


_READ_IN_TEST = re.compile(r"(?:environ\.get\(|getenv\(|environ\[)\s*\"(LLM_MESH_\w+)\"")


def test_every_variable_a_test_reads_is_documented() -> None:
    """What one sets to run the tests (a PostgreSQL, a Redis, a browser): README, testing.md."""
    read = {v for p in (REPO / "tests").rglob("*.py") for v in _READ_IN_TEST.findall(p.read_text())}
    assert _READ_IN_TEST.findall('os.environ.get("LLM_MESH_TEST_PG_URL") or x') == [
        "LLM_MESH_TEST_PG_URL"
    ]
    assert "LLM_MESH_TEST_PG_URL" in read
    assert sorted(read - _variables(DOC_FILES)) == []


def test_every_variable_the_docs_name_is_read() -> None:
    """A variable the docs name that nothing reads: a typo, or one renamed since."""
    files = [p for d in READERS for p in (REPO / d).rglob("*") if p.is_file()]
    files = [p for p in files if p.suffix not in (".md", ".pyc")]
    files += [REPO / "Makefile", REPO / "setup-node-operator.sh"]
    read = package_variables() | _variables(files)
    assert sorted(_variables(DOC_FILES) - read) == []


def config_table() -> dict[str, tuple[str, str]]:
    """``config.py``'s table of settings: variable → (field, the default it says)."""
    doc = (REPO / "LLM_Mesh" / "config.py").read_text().split('"""')[1]
    rows = re.findall(r"(?m)^\| ([\w.]+)\s*\| (LLM_MESH_\w+)[^|]*\| ([^|]*)", doc)
    return {var: (field, said.strip()) for field, var, said in rows}


def setting_default(var: str) -> Any:
    """What :class:`Settings` holds for ``var`` when nothing is set (``None``: no field)."""
    from LLM_Mesh.config import Settings

    field = config_table().get(var, ("", ""))[0]
    if not field:
        return None
    value: Any = Settings.from_env({"LLM_MESH_HOME": "/nonexistent"})
    for part in field.split("."):
        value = getattr(value, part)
    return value


_UNITS = {"s": 1, "min": 60, "h": 3600, "days": 1, "MiB": 1 << 20, "KiB": 1 << 10}
_SAID = re.compile(r"(\d[\d,_]*(?:\.\d+)?)(?:\s*(s|min|h|days|MiB|KiB)\b)?")
# ``LLM_MESH_X`` ... default N (unit), within one clause
_DEFAULT = re.compile(
    r"`\$?(LLM_MESH_[A-Z0-9_]+)`[^`\n;]{0,50}?\bdefault:? `?(\d[\d,_]*(?:\.\d+)?)"
    r"(?:\s*(s|min|h|days|MiB|KiB)\b)?"
)


def said_number(text: str, unit: str | None, var: str) -> float:
    value = float(text.replace(",", "").replace("_", ""))
    if unit in ("MiB", "KiB") or (unit and var.endswith("_S")):
        value *= _UNITS[unit]
    return value


def wrong_defaults(text: str) -> list[str]:
    """``LLM_MESH_X``, default N: each N that is not :class:`Settings`' default."""
    bad = []
    for m in _DEFAULT.finditer(text):
        var, said, unit = m.groups()
        real = setting_default(var)
        number = isinstance(real, (int, float)) and not isinstance(real, bool)
        if number and abs(said_number(said, unit, var) - real) > 1e-9:
            bad.append(f"{var} default {said}{' ' + unit if unit else ''}: is {real}")
    return bad


def test_the_default_check_finds_a_wrong_one() -> None:
    text = "`LLM_MESH_NODE_KEEP_DAYS` days (default 30), `LLM_MESH_SETTLE_LEASE`, default 4, "
    text += "`LLM_MESH_REGISTRY_SHUTDOWN_S`, default 80 s, `LLM_MESH_NODE_FORGET_S` (default 24 h)"
    assert wrong_defaults(text) == []
    text = "`LLM_MESH_REWARD_PERIOD_S` (default 60 min; 0: off), `LLM_MESH_MAX_BODY_BYTES` "
    text += "(default 2 MiB), `LLM_MESH_HOME` (default `~/.llm-mesh`)"
    assert wrong_defaults(text) == ["LLM_MESH_MAX_BODY_BYTES default 2 MiB: is 1048576"]
    text = "`LLM_MESH_ANONYMOUS_RPM` (default 600)"
    assert wrong_defaults(text) == ["LLM_MESH_ANONYMOUS_RPM default 600: is 60"]


def test_every_default_the_docs_say_is_the_settings() -> None:
    for page in DOC_FILES:
        text = page.read_text()
        assert (page.name, wrong_defaults(text)) == (page.name, [])


def test_config_tables_defaults_are_the_settings() -> None:
    """Each row of ``config.py``'s table says, first, the number :class:`Settings` holds."""
    table = config_table()
    assert len(table) >= 60 and table["LLM_MESH_HEARTBEAT_S"] == ("heartbeat_interval_s", "10")
    wrong = []
    for var, (_, said) in table.items():
        real = setting_default(var)
        m = _SAID.match(said)
        number = isinstance(real, (int, float)) and not isinstance(real, bool)
        if m and number and abs(said_number(m.group(1), m.group(2), var) - real) > 1e-9:
            wrong.append(f"{var}: {said[:20]!r} is {real}")
    assert wrong == []
