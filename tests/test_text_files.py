"""``text_files.read_text``: a file a user named, read as text to a bound if given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from LLM_Mesh.text_files import read_text


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
    before: no bound to give)."""
    with pytest.raises(ValueError, match="is larger than 4,096 bytes"):
        read_text("/dev/zero", "--thing", limit=4096)


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
