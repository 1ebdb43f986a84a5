"""``text_files.read_text``: a file a user named, read as text to a bound if given."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from LLM_Mesh.text_files import bounded_text, read_text


def test_a_file_at_the_bound_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    p.write_text("x" * 10)
    assert read_text(p, "--thing", limit=10) == "x" * 10
    p.write_text("x" * 11)
    with pytest.raises(ValueError) as caught:
        read_text(p, "--thing", limit=10)
    assert str(caught.value) == (
        f"--thing {p}: is larger than 10 bytes, the most read (is it the right file?)"
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_stream_with_no_end_is_read_to_the_bound_only() -> None:
    """A device or FIFO says size 0: the bound is on what is read, not on its stat (failed
    before: no bound to give). (``read_text`` refuses such a path unread: below.)"""
    with open("/dev/zero", "rb") as f, pytest.raises(ValueError, match="is larger than 4,096"):
        bounded_text(f, 4096, "--thing /dev/zero")


def fifo_refused(call: Callable[[], object], fifo: Path) -> BaseException | None:
    """What ``call`` raised (``None``: it returned), within 10 s, or a failure: it waited on
    ``fifo`` (the FIFO is then opened for writing and closed, so the thread ends)."""
    caught: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            caught.append(None)
        except BaseException as exc:  # what it raised, looked at by the test
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # a writer lets the reader's open go, then EOF
        os.close(os.open(fifo, os.O_WRONLY))
        thread.join(10)
        pytest.fail(f"waited for a writer on the FIFO {fifo}")
    return caught[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("limit", [None, 4096])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, limit: int | None) -> None:
    """Found 2026-12-06 (cli36): a FIFO named as a file (``ask --prompt-file``, a receipt,
    ``--keys``) was opened, and ``open`` waited for a writer for ever (failed before: the
    wait). Its stat is looked at first, and it is refused in words."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    raised = fifo_refused(lambda: read_text(fifo, "--thing", limit=limit), fifo)
    assert isinstance(raised, ValueError), raised
    assert str(raised).startswith(f"--thing {fifo}: is not a regular file (a FIFO"), raised


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_a_device_is_refused_and_a_folder_said_as_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a regular file"):
        read_text("/dev/null", "--thing")
    with pytest.raises(ValueError, match="is a folder, not a file"):
        read_text(tmp_path, "--thing")
    with pytest.raises(ValueError, match="no such file"):
        read_text(tmp_path / "nope", "--thing", limit=10)


def test_with_no_bound_the_whole_file_is_read(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    p.write_text("y" * 100_000)
    assert read_text(p, "--thing") == "y" * 100_000


def test_a_regular_file_past_the_bound_is_refused_unread(tmp_path: Path) -> None:
    """Found 2026-12-06 (small35): a file larger than the bound had ``limit`` + 1 bytes
    read and held before it was refused (a 64 GiB sparse receipt: 64 MiB in memory; failed
    before: the peak was the bound). A regular file's size refuses it unread; a stream is
    still bounded by what is read (the test above)."""
    import tracemalloc

    limit = 32 * 1024 * 1024
    p = tmp_path / "sparse.json"
    with p.open("wb") as f:
        f.truncate(limit + 1)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="is larger than 33,554,432 bytes"):
            read_text(p, "--thing", limit=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
