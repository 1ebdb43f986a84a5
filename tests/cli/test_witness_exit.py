"""``llm-mesh ledger witness``'s exit status tells a cron job or a service manager what its
rounds came to (found 2026-12-05: a cosignature the registry refused, 403, "not handed
in", left no trace in the exit status of rounds with ``--every``, which ran on as if all
was well; stopped, they said nothing of it).

One round: 0 cosigned and handed in (or nothing to cosign yet); 1 a checkpoint refused
(evidence printed) or an error; 3 (:data:`NOT_HANDED_IN`) cosigned but the registry
refused the cosignature. ``--every``: a round not handed in or failed is logged and the
rounds go on; stopped by SIGTERM or SIGINT, the witness says what its rounds came to and
exits with its last round's status (a refused checkpoint still ends the rounds at once, 1).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from LLM_Mesh.cli.ledger_witness import NOT_HANDED_IN, Round, run_witness
from LLM_Mesh.core.witness import COSIGN, Decision
from LLM_Mesh.errors import UpstreamError

CLEAN = Round(Decision(COSIGN, "extends size 3 to 4"), None, "note", "handed in")
NOT_IN = Round(
    Decision(COSIGN, "extends size 3 to 4"),
    None,
    "note",
    "refused by the registry (403): not a witness this registry accepts",
)
REFUSED = Round(Decision("split view", "two roots for size 3"), None, "note")


class Stop(BaseException):
    """A SIGTERM the witness did not handle (before: it ended the test, not the rounds)."""


@pytest.fixture
def sigterm_raises() -> Iterator[None]:
    def raise_stop(_sig: int, _frame: FrameType | None) -> None:
        raise Stop

    before = signal.signal(signal.SIGTERM, raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def scripted(rounds: list[Round | Exception], stop_after: int) -> Callable[[], object]:
    """Rounds as told; after the ``stop_after``-th a SIGTERM (a service manager's stop).
    A round begun after it waits to be cancelled: the loop runs the signal's handler on a
    later turn, and under load a 1 ms wait between rounds could end first (a flake seen in
    CI: a third round counted)."""
    done = 0

    async def one() -> Round:
        nonlocal done
        done += 1
        if 0 < stop_after < done:
            await asyncio.Event().wait()  # cancelled by the stop
        what = rounds[min(done, len(rounds)) - 1]
        if done == stop_after:
            signal.raise_signal(signal.SIGTERM)
        if isinstance(what, Exception):
            raise what
        return what

    return one


def run(tmp_path: Path, one: Callable[[], object], every: float | None) -> int:
    return run_witness(tmp_path / "state.json", tmp_path / "lock", one, every)


def test_one_round_not_handed_in_exits_3_and_a_clean_one_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, scripted([NOT_IN], 0), None) == NOT_HANDED_IN == 3
    assert "not handed in" in capsys.readouterr().err
    assert run(tmp_path, scripted([CLEAN], 0), None) == 0
    assert run(tmp_path, scripted([REFUSED], 0), None) == 1


@pytest.mark.usefixtures("sigterm_raises")
def test_rounds_not_handed_in_go_on_and_the_exit_on_stop_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, scripted([CLEAN, NOT_IN, NOT_IN], 3), 0.001) == NOT_HANDED_IN
    err = capsys.readouterr().err
    assert err.count("not handed in:") == 2  # each logged, and the rounds went on
    assert "stopped (SIGTERM) after 3 rounds: 1 handed in, 2 not handed in, 0 failed" in err


@pytest.mark.usefixtures("sigterm_raises")
def test_rounds_whose_last_was_clean_stop_with_0(tmp_path: Path) -> None:
    assert run(tmp_path, scripted([NOT_IN, CLEAN], 2), 0.001) == 0


@pytest.mark.usefixtures("sigterm_raises")
def test_rounds_whose_last_failed_stop_with_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, scripted([CLEAN, UpstreamError("the registry said 502")], 2), 0.001) == 1
    assert "1 handed in, 0 not handed in, 1 failed" in capsys.readouterr().err


@pytest.mark.usefixtures("sigterm_raises")
def test_a_refused_checkpoint_still_ends_the_rounds_with_1(tmp_path: Path) -> None:
    assert run(tmp_path, scripted([NOT_IN, REFUSED], 0), 0.001) == 1


def test_the_signal_handlers_are_given_back(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run(tmp_path, scripted([CLEAN, REFUSED], 0), 0.001) == 1
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.usefixtures("sigterm_raises")
def test_a_round_not_handed_in_does_not_say_stopped_while_the_rounds_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 2026-12-05 (newuser31): after each round not handed in, ``--every`` printed
    "again in 60 s; stopped, the witness exits 3 while its last round was not handed in",
    and went on: it had not stopped. "stopped" is said once, when it stops."""
    assert run(tmp_path, scripted([NOT_IN, NOT_IN, NOT_IN], 3), 0.001) == NOT_HANDED_IN
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("stopped") == 1 and "stopped (SIGTERM) after 3 rounds" in err, err
    assert "again in 0.001 s; until a round is handed in, the witness's exit status is 3" in err
