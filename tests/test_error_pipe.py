"""A child's one-line error through a pipe to its starter (``LLM_Mesh/error_pipe.py``)."""

from __future__ import annotations

import os
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
