"""A home that cannot be written opens no window for the previous key (found 2026-12-07, rot42).

rot41 took the previous key's beat tokens for ``PREVIOUS_KEY_TOKENS_S`` from the rotation's
first start at a replica, kept in ``registry.key.previous.since``. Where that file could not
be written (a home mounted read-only, a full disk) each start took ``now`` as the rotation's
start: every restart opened a fresh window, so a leaked old key's tokens were taken again
after each restart for as long as ``registry.key.previous`` stayed. Now such a start takes
none of them (a WARNING says why and what to do); a ``since`` file the operator wrote beside
the key is read as before. The window itself is a setting (``previous_key_window_s``,
``LLM_MESH_PREVIOUS_KEY_WINDOW_S``). The write failure is injected (tests run as root, where
``chmod`` stops no write). Real registry apps on one store, the real ``SignedNodeAuth``
(as ``test_rot41_previous_window.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.registry import gateway_key
from LLM_Mesh.registry.gateway_key import SINCE_FILE, previous_key_since
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import running
from tests.registry.node_auth_mesh import Wall, make_node, operator
from tests.registry.test_beatkey39_replicas import CountingNode, replicas
from tests.registry.test_beatrot40_rotation import _rotated
from tests.registry.test_beattoken38_tokens import _fill_the_total
from tests.registry.test_heartbeat_signature_tries import HOME
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


def _read_only(path: Path, data: bytes) -> None:
    raise PermissionError(13, "Read-only file system", str(path))


@pytest.fixture
def read_only_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of ``registry.key.previous.since`` fails as on a read-only mount."""
    monkeypatch.setattr(gateway_key, "replace_file", _read_only)
    monkeypatch.setattr(previous_key_since, "__defaults__", (_read_only,))


async def _old_token_at_rotated(
    home: Path, store: MemoryStore, wall: Wall, node: CountingNode, old: Ed25519PrivateKey,
    new: Ed25519PrivateKey, **settings: object,
) -> int:  # fmt: skip
    """Start the rotated replica at ``home`` (``new``, ``registry.key.previous`` = ``old``)
    beside one still on ``old``; the node's old-key token past the counts there: its code."""
    async with (
        running(home, store=store, signed=True, wall_clock=wall, gateway_key=new, **settings)
        as rotated,
        replicas(home.parent / f"{home.name}-behind", store, wall, old) as (behind,),
    ):  # fmt: skip
        await node.register(behind.app)
        await _fill_the_total(rotated.app, node.node)
        async with _from(rotated.app, HOME) as c:
            return await node.beat(c)


@pytest.mark.usefixtures("read_only_home")
async def test_a_home_that_cannot_be_written_takes_no_old_key_token_at_any_start(
    tmp_path: Path, verifies: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    home = tmp_path / "r0"
    _rotated(home, old)
    with caplog.at_level(logging.WARNING, "LLM_Mesh"):
        assert await _old_token_at_rotated(home, store, wall, node, old, new) == 404  # before: 200
    said = [r.getMessage() for r in caplog.records if SINCE_FILE in r.getMessage()]
    assert len(said) == 1 and "not taken at all" in said[0], said
    assert not (home / SINCE_FILE).exists()
    # restarted long after the first start (a leaked key's holder waits for a restart)
    wall.now += 24 * 3600
    assert await _old_token_at_rotated(home, store, wall, node, old, new) == 404  # before: 200
    # the node registers again at the rotated replica and beats on (the new key's token)
    async with running(home, store=store, signed=True, wall_clock=wall, gateway_key=new) as h:
        await _fill_the_total(h.app, node.node)
        assert await node.beat_as_agent(h.app) == 200
        assert await node.beat_as_agent(h.app) == 200


@pytest.mark.usefixtures("read_only_home")
async def test_a_since_written_beside_the_key_opens_its_window_in_a_read_only_home(
    tmp_path: Path, verifies: list[int]
) -> None:
    """The operator's way to take the old key's tokens during a rolling rotation where the
    home is read-only: write ``registry.key.previous.since`` with the key (the WARNING says
    so); its window is read, never moved by a restart."""
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    home = tmp_path / "r0"
    _rotated(home, old)
    kept = {"previous_public_key": encode_public_key(public_key_of(old)), "since": wall()}
    (home / SINCE_FILE).write_text(json.dumps(kept))
    wall.now += 60
    assert await _old_token_at_rotated(home, store, wall, node, old, new, previous_key_window_s=120.0) == 200  # fmt: skip
    wall.now += 60  # 120 s after the since the operator wrote: over
    assert await _old_token_at_rotated(home, store, wall, node, old, new, previous_key_window_s=120.0) == 404  # fmt: skip


async def test_the_window_is_the_setting(tmp_path: Path, verifies: list[int]) -> None:
    """``previous_key_window_s``: a minute here, where the default is 15."""
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    home = tmp_path / "r0"
    _rotated(home, old)
    assert await _old_token_at_rotated(home, store, wall, node, old, new, previous_key_window_s=60.0) == 200  # fmt: skip
    assert json.loads((home / SINCE_FILE).read_bytes())["since"] == wall()
    wall.now += 60
    assert await _old_token_at_rotated(home, store, wall, node, old, new, previous_key_window_s=60.0) == 404  # fmt: skip
    # a longer window at a later start counts from the same kept since
    assert await _old_token_at_rotated(home, store, wall, node, old, new, previous_key_window_s=3600.0) == 200  # fmt: skip


@pytest.mark.parametrize("window_s", [0.0, -1.0, 86400.5, float("inf"), float("nan")])
async def test_a_window_past_its_bounds_built_in_code_stops_the_start(
    tmp_path: Path, window_s: float
) -> None:
    with pytest.raises(ValueError, match=r"previous_key_window_s must be .* at most 86400"):
        async with running(tmp_path, previous_key_window_s=window_s):
            pass  # pragma: no cover - refused at start


def test_previous_key_since_is_none_when_it_cannot_be_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The edge itself, its write injected: None (no window) where the stamp cannot be
    written, unreadable or not; the stamp kept, once written, is read back unchanged."""
    old = Ed25519PrivateKey.generate()
    with caplog.at_level(logging.WARNING, "LLM_Mesh"):
        assert previous_key_since(tmp_path, old, 100.0, write=_read_only) is None  # before: 100
        (tmp_path / SINCE_FILE).write_text("{not json")
        assert previous_key_since(tmp_path, old, 100.0, write=_read_only) is None
    assert sum("not taken at all" in r.getMessage() for r in caplog.records) == 2
    (tmp_path / SINCE_FILE).unlink()
    assert previous_key_since(tmp_path, old, 100.0) == 100.0  # written
    assert previous_key_since(tmp_path, old, 500.0, write=_read_only) == 100.0  # read
