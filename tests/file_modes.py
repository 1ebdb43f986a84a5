"""File-mode helpers for the tests of a home's private files (``test_private_home.py``,
``registry/test_home_file_modes.py``): the usual umask, and a path's permission bits."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask (022), under which a file made with the default 0666 is 0644 and a
    folder 0755; autouse in a module that imports it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
