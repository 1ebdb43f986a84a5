"""Answers served but not yet written, kept in the home so a crash does not lose them.

An answer is released to its client before it is paid only in one case: its write failed
(the settlement database away). The holder writes it again until the database takes it
(``settle_upkeep.SettleUpkeep._again``); if the process dies first (killed, a host reboot),
nothing in the database says it was answered: recovery lapses its ``pending`` row (or, for a
lease's answer, there is no row at all), and the operator is never paid for compute it
served, while the client holds a receipt of a charge the ledger never shows.

So at its first failed write the answer is appended to ``$LLM_MESH_HOME/settlement.unwritten``
(one JSON line: the holder, the request key, payer, model, estimate, parts, receipt hash,
whether a lease admitted it; no prompt, no output; mode 0600, synced: a failed batch's lines
in one write and one sync), by the process that
holds the home's ``settlement.lock`` only. Recovery of a holder (its successor's start on
this home) reads that holder's lines after voiding its pending rows and records each answer
as its holder would have: a lapsed row revived (``settle_ledger.revive``: reserved again if
the payer still covers it), a lease's answer written (``settle_ledger.spend_again``), then
settled; one written before the crash after all is found so and left as it is (both are
idempotent: nothing is paid twice). The lines of recovered holders are then dropped, and a
live holder's own at its upkeep round once none of its writes waits to be written again
(``SettleUpkeep._drop_written``; found 2026-12-05: kept until its stop, the file grew with
every outage's answers for as long as the gateway ran).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.settle_db import Answer, PaidPart

__all__ = ["AnswerJournal", "Unwritten"]

NAME = "settlement.unwritten"


@dataclass(frozen=True)
class Unwritten:
    holder: str
    answer: Answer
    lease: bool  # admitted from a lease: no pending row (its write was a Spend)


def _line(u: Unwritten) -> str:
    a = u.answer
    parts = [[p.node_id, p.operator, p.amount, p.fee] for p in a.parts]
    return json.dumps(
        {"holder": u.holder, "key": a.key, "payer": a.payer, "model": a.model,
         "estimate": a.estimate, "parts": parts, "receipt": a.receipt_hash, "lease": u.lease},
        separators=(",", ":"),
    )  # fmt: skip


def _parse(line: str) -> Unwritten | None:
    try:
        d: Any = json.loads(line)
        parts = tuple(PaidPart(str(n), o, int(a), int(f)) for n, o, a, f in d["parts"])
        answer = Answer(
            str(d["key"]), str(d["payer"]), str(d["model"]), int(d["estimate"]), parts,
            d["receipt"],
        )  # fmt: skip
        return Unwritten(str(d["holder"]), answer, bool(d["lease"]))
    except (ValueError, KeyError, TypeError):  # a line cut by the crash itself
        return None


class AnswerJournal:
    """``settlement.unwritten`` in a home (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.path = home / NAME

    def add(self, *us: Unwritten) -> None:
        """Append ``us`` (a failed batch's answers: one write, one sync), synced before this
        returns."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(_line(u) + "\n" for u in us).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[Unwritten]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [u for u in map(_parse, text.splitlines()) if u is not None]

    def of(self, holders: Collection[str | None]) -> list[Unwritten]:
        """The lines of ``holders``."""
        return [u for u in self.read() if u.holder in holders]

    def drop(self, holders: Collection[str | None]) -> None:
        """Keep only the lines of other holders (written to a new file, then renamed)."""
        keep = [u for u in self.read() if u.holder not in holders]
        if not keep:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(_line(u) + "\n" for u in keep).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
