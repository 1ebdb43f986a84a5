"""Answers served but not yet written, kept in the home so a crash does not lose them.

An answer is released to its client before it is paid only in one case: its write failed
(the settlement database away). The holder writes it again until the database takes it
(``settle_upkeep.SettleUpkeep._again``); if the process dies first (killed, a host reboot),
nothing in the database says it was answered: recovery lapses its ``pending`` row (or, for a
lease's answer, there is no row at all), and the operator is never paid for compute it
served, while the client holds a receipt of a charge the ledger never shows.

So at its first failed write the answer is appended to the process's own journal in its
home, ``$LLM_MESH_HOME/settlement.unwritten.<holder>`` (:class:`OwnJournal`: one JSON line
an answer: the holder, the request key, payer, model, estimate, parts, receipt hash,
whether a lease admitted it; no prompt, no output; mode 0600, synced: a failed batch's lines
in one write and one sync). Every process on the
home keeps its own (``registry serve --workers N``: each worker; until 2026-12-05 only the
process holding ``settlement.lock`` kept one, in a single ``settlement.unwritten``, and the
other workers' answers were lost with them). The journal's writer holds an ``flock`` on it
from its creation (made under a temporary name, locked, then renamed into place) until it
exits: a journal whose lock can be taken is a dead holder's.

Recovery on this home (:func:`dead_journals`, :func:`claimed`): the holders of the home's
journals that nobody holds are recovered (``SettleUpkeep.recover``: at each start and each
upkeep round, as well as a predecessor named by ``settlement.holder`` and the holders whose
heartbeats stopped). After voiding their pending rows, their lines are read and each answer
recorded as its holder would have: a lapsed row revived (``settle_ledger.revive``: reserved
again if the payer still covers it), a lease's answer written (``settle_ledger.spend_again``;
also an answer whose row a power cut took, ``settle_durable.py``), then settled; one written before the crash after all is found so and left as it is (both are
idempotent: nothing is paid twice). The journal is removed while still locked by the
recoverer (a second recoverer cannot take it, or finds it gone). The older single file,
``settlement.unwritten`` (this morning's form), is read the same way for the holders named.
A live process removes its own journal at its upkeep round once none of its writes waits
to be written again (``SettleDurable._drop_written``; found 2026-12-05: kept until its stop,
the file grew with every outage's answers for as long as the gateway ran). Every removal
(that one, a clean stop's, a recoverer's) waits until the store's log holding the writes is
synced (``settle_durable.py``; found 2026-12-05: a power cut after a removal lost them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.settle_db import Answer, PaidPart

__all__ = ["OwnJournal", "Unwritten", "claimed", "dead_journals"]

NAME = "settlement.unwritten"
_HOLDER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a holder id (Settlement.holder: h-<hex>)


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


def _lines(data: bytes) -> list[Unwritten]:
    text = data.decode("utf-8", "replace")
    return [u for u in map(_parse, text.splitlines()) if u is not None]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem opens a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class OwnJournal:
    """This process's journal, ``settlement.unwritten.<holder>`` in ``home`` (module
    docstring): made and locked at the first :meth:`add`."""

    def __init__(self, home: Path, holder: str) -> None:
        self.holder = holder
        self.path = home / f"{NAME}.{holder}"
        self._fd: int | None = None
        self.lines = 0  # answers added so far (whether one was added while the WAL synced)

    def _open(self) -> int:
        import fcntl  # no flock (not POSIX): OSError's caller logs it; written again anyway

        tmp = self.path.with_name(f".{self.path.name}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(tmp, self.path)  # in place locked: never seen unlocked while alive
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def add(self, *us: Unwritten) -> None:
        """Append ``us`` (a failed batch's answers: one write, one sync), synced before this
        returns."""
        if not us:
            return
        if self._fd is None:
            self._fd = self._open()
        os.write(self._fd, "".join(_line(u) + "\n" for u in us).encode())
        os.fsync(self._fd)
        self.lines += len(us)

    @property
    def kept(self) -> bool:
        """Whether this process's journal exists now (made at the first :meth:`add`)."""
        return self._fd is not None

    def remove(self) -> None:
        """Remove the journal (a clean stop: its answers written, or counted unpaid)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(fd)

    def abandon(self) -> None:
        """Let go of the lock and keep the file (what a killed process leaves; tests)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _holder_of(path: Path) -> str | None:
    holder = path.name[len(NAME) + 1 :]
    return holder if path.name.startswith(NAME + ".") and _HOLDER.fullmatch(holder) else None


def _try_lock(path: Path) -> int | None:
    """``path`` opened and locked without waiting, if it is still the file at ``path``;
    ``None`` when its writer is alive or it is gone."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed meanwhile: recovered
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return fd


def dead_journals(home: Path | None, me: str) -> list[str]:
    """The holders (not ``me``) whose journals in ``home`` nobody holds: dead processes
    (none without a home, or without ``flock``: nothing was journalled)."""
    try:
        import fcntl  # noqa: F401

        paths = sorted(home.glob(NAME + ".h-*")) if home is not None else []
    except (OSError, ImportError):  # pragma: no cover - no flock
        return []
    dead = []
    for path in paths:
        holder = _holder_of(path)
        if holder is None or holder == me:
            continue
        fd = _try_lock(path)
        if fd is not None:
            os.close(fd)
            dead.append(holder)
    return dead


@contextlib.contextmanager
def claimed(home: Path, holders: Collection[str | None], me: str) -> Iterator[list[Unwritten]]:
    """The unwritten answers of dead ``holders`` (not ``me``) on ``home``: their journals
    locked while the block records them, removed when it ends without an error; and the
    lines of ``holders`` in the older single ``settlement.unwritten``, dropped from it."""
    fds: list[tuple[Path, int]] = []
    found: list[Unwritten] = []
    try:
        for holder in holders:
            if holder is None or holder == me or not _HOLDER.fullmatch(holder):
                continue
            path = home / f"{NAME}.{holder}"
            fd = _try_lock(path)
            if fd is None:  # none, or its writer is alive (taken for dead): it revives its own
                continue
            fds.append((path, fd))
            with open(fd, "rb", closefd=False) as f:
                found += [u for u in _lines(f.read()) if u.holder == holder]
        legacy = home / NAME
        old = _lines(legacy.read_bytes()) if legacy.exists() else []
        found += [u for u in old if u.holder in holders and u.holder != me]
        yield found
        for path, _ in fds:
            path.unlink(missing_ok=True)
        if old:
            _rewrite(legacy, [u for u in old if u.holder not in holders or u.holder == me])
    finally:
        for _, fd in fds:
            os.close(fd)


def _rewrite(path: Path, keep: list[Unwritten]) -> None:
    if not keep:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(_line(u) + "\n" for u in keep).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
