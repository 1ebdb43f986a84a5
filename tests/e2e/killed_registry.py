"""``llm-mesh`` that SIGKILLs itself at a named point of the money path, for crash tests.

Run as ``python -m tests.e2e.killed_registry registry serve ...``. While the file named by
``$LLM_MESH_TEST_KILL_FILE`` exists, the process kills itself (``SIGKILL``: nothing after it
runs, no stop, no flush) at ``$LLM_MESH_TEST_KILL_AT``:

- ``answered``: a request's answer was written (``Settlement.answer`` returned: the
  ``answered`` rows, or a lease's ``Spend``, committed), before the answer is released;
- ``appending``: inside the settler's ledger append on SQLite, its statements run (the rows
  flipped ``settled``, the entries and balances written) and not committed yet;
- ``unwritten``: a request's answer, its write failing (the settlement database away from
  then on), just after that failure (the answer would be released now).

Without the file it is ``llm-mesh`` unchanged (a restarted registry).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KILL_AT = "LLM_MESH_TEST_KILL_AT"
KILL_FILE = "LLM_MESH_TEST_KILL_FILE"


def _armed() -> bool:
    flag = os.environ.get(KILL_FILE)
    return bool(flag) and Path(flag).exists()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    """Put the kill at ``point`` (see the module docstring)."""
    if point == "answered":
        from LLM_Mesh.registry.settlement import Settlement

        answer = Settlement.answer

        async def answer_then_die(self: Settlement, op: Any) -> bool:
            done = await answer(self, op)
            if _armed():
                _die()
            return done

        Settlement.answer = answer_then_die  # type: ignore[method-assign]
    elif point == "unwritten":
        from LLM_Mesh.registry.settlement import Settlement

        answer = Settlement.answer

        async def away_then_die(self: Settlement, op: Any) -> bool:
            if not _armed():
                return await answer(self, op)
            db = self.db

            def away(*_a: Any, **_k: Any) -> Any:
                raise ConnectionError("the settlement database is away")

            async def away_async(*_a: Any, **_k: Any) -> Any:
                away()

            db.try_inline = away  # type: ignore[attr-defined]
            db.apply = away_async  # type: ignore[method-assign]
            try:
                return await answer(self, op)  # fails: kept in the home, to be written again
            finally:
                _die()

        Settlement.answer = away_then_die  # type: ignore[method-assign]
    elif point == "appending":
        from LLM_Mesh.registry import settle_sqlite, settle_upkeep

        append = settle_sqlite.append_settled

        def append_then_die(
            conn: sqlite3.Connection, answers: Sequence[Any], now: str, now_us: int
        ) -> int:
            size = append(conn, answers, now, now_us)
            if _armed():
                _die()  # in the transaction, before its COMMIT
            return size

        settle_upkeep.append_settled = append_then_die  # type: ignore[assignment]
    else:
        raise SystemExit(f"{KILL_AT}: no kill point {point!r}")


if __name__ == "__main__":
    install(os.environ.get(KILL_AT, ""))
    from LLM_Mesh.cli.main import main

    main()
