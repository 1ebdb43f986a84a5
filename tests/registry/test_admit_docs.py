"""docs/ARCHITECTURE.md's admit stage against `admit.default_checks` as a default registry
builds it: the chain it writes out (``Authenticate`` → ...) and the number of checks it says a
request runs.

Found 2026-12-06 (docs33): the chain left out ``InFlightBound`` (an anonymous address's
requests in flight, on by default), and "runs five admission checks (six on a lone registry
with settlement)" was one short each: a default registry (lone, SQLite, settlement on) runs
seven.
"""

from __future__ import annotations

import re
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.registry.app import create_registry_app

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
WORDS = {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


def documented_chain(text: str) -> list[str]:
    """The classes of "`default_checks`: `A` (...) → `B` → ..." in order, what each says in
    brackets left out."""
    line = text.split("`default_checks`: ", 1)[1].split("\n", 1)[0].split(" | ", 1)[0]
    depth, kept = 0, []
    for ch in line:
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch != ")":
            kept.append(ch)
    return re.findall(r"`(\w+)`", "".join(kept))


def test_the_chain_reader() -> None:
    text = "x `default_checks`: `A` → `B` (`b.py`: why (and `C`)) → `D` | owns `E`\n`F`"
    assert documented_chain(text) == ["A", "B", "D"]


def test_the_documented_checks_are_a_default_registrys(tmp_path: Path) -> None:
    app = create_registry_app(Settings.from_env({"LLM_MESH_HOME": str(tmp_path)}))
    built = [type(c).__name__ for c in app.state.pipeline.admission.checks]
    text = ARCHITECTURE.read_text()
    assert documented_chain(text) == built
    said = re.search(r"runs (\w+) admission checks with the defaults on a lone registry", text)
    assert said is not None and WORDS[said.group(1)] == len(built)
