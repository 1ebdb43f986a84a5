"""``llm-mesh ledger witness``'s rounds (``cli/ledger_witness.py`` reads, decides and hands
in one): a round's outcome (:class:`Round`), said (:func:`print_round`), its exit status
(:func:`round_status`), and rounds every ``--every`` seconds until a checkpoint is refused or
a signal stops them (:func:`run_witness`).

Exit status, one round: 0 cosigned and handed in (or nothing to cosign yet); 1 a checkpoint
refused (a split view, a rollback, a bad signature: evidence printed) or an error;
:data:`NOT_HANDED_IN` (3) cosigned, but the registry refused the cosignature (found
2026-12-05: "not handed in" was said, and rounds with ``--every`` ran on with no trace of it
in the exit status). Rounds: a round not handed in or failed is said and the rounds go on;
a refused checkpoint ends them (1); SIGTERM (a service manager's stop) or SIGINT ends them
with what they came to said and the last round's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.cli.common import console, err
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.core.witness import Cosigned, Decision
from LLM_Mesh.errors import MeshError
from LLM_Mesh.secret_files import try_lock
from LLM_Mesh.witness.log_keys import LogKeyRefused

__all__ = ["NOT_HANDED_IN", "STOP_SIGNALS", "Round", "print_round", "round_status", "run_witness"]


@dataclass(frozen=True)
class Round:
    """One round's outcome: ``decision`` ``None`` when the registry has signed nothing
    yet; ``last``: the cosigned checkpoint before it; ``note``: the one offered now."""

    decision: Decision | None
    last: Cosigned | None
    note: str = ""
    submitted: str = ""  # what the registry said of the cosignature, or why it was not sent

    @property
    def refused(self) -> bool:
        return self.decision is not None and not self.decision.ok


def _note(title: str, note: str) -> None:
    err.print(f"--- {title}", markup=False, highlight=False, soft_wrap=True)
    err.print(terminal_text(note.rstrip("\n")), markup=False, highlight=False, soft_wrap=True)


def print_round(rnd: Round) -> None:
    d = rnd.decision
    if d is None:
        console.print("nothing to cosign: the registry has signed no checkpoint yet")
        return
    if d.ok and rnd.submitted.startswith("refused"):
        err.print(f"[red]not handed in[/]: {shown(d.message)}, cosigned; {shown(rnd.submitted)}",
                  highlight=False, soft_wrap=True)  # fmt: skip
        return
    if d.ok:
        console.print(f"[green]cosigned[/]: {shown(d.message)}; {shown(rnd.submitted)}")
        return
    err.print(f"[red]REFUSED ({d.kind})[/]: {shown(d.message)}", highlight=False, soft_wrap=True)
    if rnd.last is not None:
        err.print(
            "evidence: the checkpoint this witness cosigned before and the one the registry "
            "offers now (check both with any C2SP signed-note verifier):",
            highlight=False,
            soft_wrap=True,
        )
        _note(f"cosigned before (size {rnd.last.size})", rnd.last.note)
    _note("offered now", rnd.note)
    err.print("the witness's state is unchanged: nothing was cosigned")


NOT_HANDED_IN = 3
"""The exit status of a round that cosigned but whose cosignature the registry refused (not
in its ``LLM_MESH_LEDGER_WITNESSES``, say): distinct from 1, a refused checkpoint or an
error, and 2, a usage error."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def round_status(rnd: Round) -> int:
    """A round's exit status: 0 cosigned and handed in (or nothing to cosign), 1 refused,
    :data:`NOT_HANDED_IN`."""
    if rnd.refused:
        return 1
    return NOT_HANDED_IN if rnd.submitted.startswith("refused") else 0


@dataclass
class _Tally:
    rounds: int = 0
    handed_in: int = 0
    not_handed_in: int = 0
    failed: int = 0
    last: int = 1  # no round completed yet: not a clean one

    def add(self, status: int) -> None:
        self.rounds += 1
        self.last = status
        if status == 0:
            self.handed_in += 1
        elif status == NOT_HANDED_IN:
            self.not_handed_in += 1
        else:
            self.failed += 1

    def said(self, why: str) -> str:
        return (f"stopped ({why}) after {self.rounds} rounds: {self.handed_in} handed in, "
                f"{self.not_handed_in} not handed in, {self.failed} failed; exit {self.last} "
                "(the last round's)")  # fmt: skip


async def _rounds(one_round: Callable[[], Any], every: float | None, tally: _Tally) -> int:
    """Rounds until a checkpoint is refused (1) or, without ``every``, after one."""
    while True:
        try:
            rnd: Round = await one_round()
        except LogKeyRefused as exc:  # (witness/log_keys.py): no cosignature
            if every is None:
                raise
            tally.add(1)
            err.print(f"[red]REFUSED (log key)[/]: {shown(exc)}; the witness's state is "
                      f"unchanged; again in {every:g} s", highlight=False,
                      soft_wrap=True)  # fmt: skip
        # (the shapes are read into MeshError; the rest: a registry's answer this
        # reading missed must not end a witness that runs for months)
        except (MeshError, httpx.HTTPError, ValueError, KeyError, TypeError,
                AttributeError, RecursionError, OverflowError) as exc:  # fmt: skip
            if every is None:
                raise
            tally.add(1)
            err.print(f"[yellow]round failed[/] ({type(exc).__name__}: {shown(exc)}); "
                      f"again in {every:g} s", highlight=False)  # fmt: skip
        else:
            print_round(rnd)
            status = round_status(rnd)
            tally.add(status)
            if rnd.refused or every is None:
                return status
            if status:
                # "stopped" only once it stops (found 2026-12-05: said after each round)
                err.print(f"again in {every:g} s; until a round is handed in, the witness's "
                          f"exit status is {NOT_HANDED_IN}", highlight=False)  # fmt: skip
        await asyncio.sleep(every)


async def _until_stopped(
    one_round: Callable[[], Any], every: float, signals: Sequence[signal.Signals]
) -> int:
    """Rounds until a checkpoint is refused (1) or a signal of ``signals`` (SIGTERM from a
    service manager, Ctrl-C) stops them, the round under way cancelled (its state, if it
    cosigned, is saved before the cosignature leaves): what the rounds came to is said and
    the last completed round's status is the exit status (1 when none completed)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    caught: list[str] = []
    given_back: list[tuple[signal.Signals, Any]] = []

    def stopped_by(name: str) -> None:
        caught.append(name)
        stop.set()

    for sig in signals:
        before = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, stopped_by, sig.name)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        given_back.append((sig, before))
    tally = _Tally()
    rounds = asyncio.ensure_future(_rounds(one_round, every, tally))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({rounds, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if rounds.done():
            return rounds.result()
        rounds.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rounds
        err.print(tally.said(caught[0] if caught else "stopped"), highlight=False)
        return tally.last
    finally:
        stopped.cancel()
        for sig, before in given_back:
            loop.remove_signal_handler(sig)
            signal.signal(sig, before)


def run_witness(
    state_path: Path,
    lock_path: Path,
    one_round: Callable[[], Any],
    every: float | None,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
) -> int:
    """The exit status of one round (``every`` ``None``: :func:`round_status`) or of rounds
    every ``every`` seconds (:func:`_until_stopped`); ``one_round``: an awaitable factory
    of :class:`Round`."""
    fd = try_lock(lock_path)
    if fd is None:
        raise MeshError(f"another witness runs on this home ({lock_path} is held)")
    try:
        if every is None:
            return asyncio.run(_rounds(one_round, None, _Tally()))
        return asyncio.run(_until_stopped(one_round, every, signals))
    finally:
        os.close(fd)
