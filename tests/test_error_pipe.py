"""A child's one-line error through a pipe to its starter (``LLM_Mesh/error_pipe.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from LLM_Mesh import error_pipe


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = error_pipe.open_pipe()
    yield read, write
    error_pipe.take_from({})  # nothing kept for the next test
    os.close(read)
    os.close(write)


def test_a_line_is_told_once_as_one_line_and_its_number_leaves_the_environment(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    environ = {error_pipe.ERROR_FD_ENV: str(write), "OTHER": "x"}
    error_pipe.take_from(environ)
    assert environ == {"OTHER": "x"}  # a process it starts does not inherit the number
    assert error_pipe.read_said(read) is None  # nothing written yet: no wait
    error_pipe.tell("the registry could not write\n  /h/settlement.holder")
    error_pipe.tell("a second line")  # once only
    assert error_pipe.read_said(read) == "the registry could not write /h/settlement.holder"
    assert error_pipe.read_said(read) is None


def test_no_line_is_written_to_a_number_that_is_no_pipe(
    pipe: tuple[int, int], tmp_path: Path
) -> None:
    """A number inherited by mistake may be another file there: nothing written to it."""
    with (tmp_path / "f").open("wb") as f:
        error_pipe.take_from({error_pipe.ERROR_FD_ENV: str(f.fileno())})
        error_pipe.tell("error")
    assert (tmp_path / "f").read_bytes() == b""
    error_pipe.take_from({error_pipe.ERROR_FD_ENV: "not a number"})
    error_pipe.tell("error")  # nothing, no error


def test_a_long_line_is_cut_to_one_pipe_write(pipe: tuple[int, int]) -> None:
    read, write = pipe
    error_pipe.take_from({error_pipe.ERROR_FD_ENV: str(write)})
    error_pipe.tell("x" * 10_000)
    assert error_pipe.read_said(read) == "x" * error_pipe.MAX_BYTES


def _drained(read: int) -> bytes:
    try:
        return os.read(read, 1 << 16)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("std", [0, 1, 2])
def test_attack_stdin_stdout_or_stderr_is_never_the_pipe(pipe: tuple[int, int], std: int) -> None:
    """Found 2026-12-07 (attack44): ``LLM_MESH_ERROR_FD=1`` in a command's environment
    with its stdout piped (``llm-mesh ... | jq``) wrote its error line into that output
    (2: twice on stderr). ``up`` never gives 0-2 (:func:`error_pipe.open_pipe`)."""
    read, write = pipe
    saved = os.dup(std)
    try:
        os.dup2(write, std)  # stdin, stdout or stderr is a pipe, as `| cat` makes it
        error_pipe.take_from({error_pipe.ERROR_FD_ENV: str(std)})
        error_pipe.tell("error: x")
    finally:
        os.dup2(saved, std)
        os.close(saved)
    assert _drained(read) == b""


def test_attack_a_number_closed_at_the_start_and_reused_later_is_not_written(
    pipe: tuple[int, int],
) -> None:
    """Found 2026-12-07 (attack44): the number was checked only as the line was written:
    one closed at the start (or the starter's pipe, closed since) that the process later
    gave to another pipe (an engine's stdin) got the line."""
    read, write = pipe
    spare_r, spare_w = os.pipe()
    os.close(spare_w)  # a number free at the start
    error_pipe.take_from({error_pipe.ERROR_FD_ENV: str(spare_w)})
    os.dup2(write, spare_w)  # later another pipe there
    try:
        error_pipe.tell("error: x")
        assert _drained(read) == b""
        # the starter's own pipe at the start, another pipe at its number by the write
        own_r, own_w = os.pipe()
        error_pipe.take_from({error_pipe.ERROR_FD_ENV: str(own_w)})
        os.dup2(write, own_w)  # (closes the starter's pipe's write end)
        error_pipe.tell("error: y")
        assert _drained(read) == b"" and _drained(own_r) == b""
        os.close(own_r)
        os.close(own_w)
    finally:
        os.close(spare_w)
        os.close(spare_r)


@pytest.mark.parametrize("value", ["99999999999999999999", "2147483648", "\u00b2", "arabic"])
def test_attack_a_huge_number_or_a_unicode_digit_is_no_pipe(
    pipe: tuple[int, int], value: str
) -> None:
    """Found 2026-12-07 (attack44): a number past the C int's range raised OverflowError
    from the write (a traceback in the place of every error line), ``²`` ValueError at
    every command's start; the pipe's number in Arabic-Indic digits was read as it."""
    read, write = pipe
    if value == "arabic":
        value = str(write).translate({ord("0") + i: 0x660 + i for i in range(10)})
    error_pipe.take_from({error_pipe.ERROR_FD_ENV: value})
    error_pipe.tell("error: x")  # no error
    assert _drained(read) == b""


def test_a_starter_without_stdin_and_stdout_gives_a_number_above_2() -> None:
    code = (
        "import os, sys\n"
        "os.close(0); os.close(1)\n"
        "from LLM_Mesh import error_pipe\n"
        "r, w = error_pipe.open_pipe()\n"
        "sys.stderr.write(str(w))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert int(done.stderr) >= error_pipe.LOWEST_FD


def _cli(env_fd: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, error_pipe.ERROR_FD_ENV: env_fd, "LLM_MESH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", *args], capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip


def test_attack_real_commands_with_a_hostile_number_say_their_error_once(tmp_path: Path) -> None:
    """Real processes (attack44): stdout and stderr are pipes here (``capture_output``)."""
    args = ("registry", "serve", "--tls-cert", "cert.pem")
    for value in ("1", "2", "99999999999999999999", "\u00b2"):
        done = _cli(value, *args, home=tmp_path / "h")
        assert done.returncode == 1, (value, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, value
        assert "--tls-key go together" not in done.stdout, value  # not in the output
        assert done.stderr.count("--tls-key go together") == 1, (value, done.stderr)


def test_attack_terminal_escapes_through_the_pipe_do_not_reach_ups_output(
    pipe: tuple[int, int],
) -> None:
    """(held, attack44) whatever holds the pipe writes ESC sequences (a title, a clear, a
    hyperlink) and a bidi override: ``up`` prints the line through ``fail``'s
    ``terminal_text`` (the child's ``fail`` strips them before writing too)."""
    from LLM_Mesh.cli.common import said
    from LLM_Mesh.local_mesh import LocalMeshError

    read, write = pipe
    os.write(write, b"\x1b]0;pwned\x07\x1b[2Jerror \x1b]8;;http://x\x1b\\\xe2\x80\xaeevil\n")
    line = error_pipe.read_said(read)
    assert line is not None and "\x1b" in line  # as written: up's print is what strips
    shown = said(LocalMeshError(f"{line} (the registry exited with code 1 while starting)"))
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "error" in shown and "evil" in shown
