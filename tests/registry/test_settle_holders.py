"""``registry/settle_holders.py``'s :class:`HomeLock`: one registry per home, said."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from LLM_Mesh.registry.settle_holders import HomeLock


def test_a_second_registry_on_one_home_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: a second ``registry serve`` on the same home (one SQLite file)
    started and served without a word: it shares the first one's keys and routes only to
    the nodes registered with it (docs/ARCHITECTURE.md, "Replicas")."""
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.settlement")
    first, second = HomeLock(tmp_path), HomeLock(tmp_path)
    try:
        assert first.take("holder-a") is None  # the first on this home
        assert not caplog.records
        assert second.take("holder-b") is None  # the lock is held: a flock per open file
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert f"another registry runs on {tmp_path}" in record.getMessage()
        assert "its own --home" in record.getMessage()
    finally:
        first.release()
        second.release()
    assert HomeLock(tmp_path).take("holder-c") == "holder-a"  # the last holder, now gone
