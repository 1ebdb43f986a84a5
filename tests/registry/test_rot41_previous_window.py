"""The previous key's beat tokens are taken for a while only (found open 2026-12-07, rot41).

While ``registry.key.previous`` was kept, whoever held the old key (a leaked one: the very
reason for many rotations) made beat tokens every rotated replica took, for any node id
(``GET /mesh/nodes`` lists them), until an operator removed the file and restarted every
replica. They are now taken for ``PREVIOUS_KEY_TOKENS_S`` after the rotation began at the
replica (its first start with that previous key, kept in ``registry.key.previous.since``),
then refused as any other key's, a later restart not reopening the window; the previous key
still signs the rotation statement. Two real registry apps on one store, the real
``SignedNodeAuth`` (as ``test_beatrot40_rotation.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.beat_mac import PREVIOUS_KEY_TOKENS_S
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.registry.gateway_key import SINCE_FILE
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import running
from tests.registry.node_auth_mesh import Wall, make_node, operator
from tests.registry.test_beatkey39_replicas import CountingNode, replicas
from tests.registry.test_beatrot40_rotation import _rotated
from tests.registry.test_beattoken38_tokens import _fill_the_total
from tests.registry.test_heartbeat_signature_tries import HOME
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


async def test_the_old_keys_tokens_are_refused_once_the_window_is_over(
    tmp_path: Path, verifies: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _rotated(tmp_path / "r0", old)
    async with replicas(tmp_path, store, wall, new, old) as (rotated, behind):
        await node.register(behind.app)  # within the window: taken (beatrot40)
        await _fill_the_total(rotated.app, node.node)
        async with _from(rotated.app, HOME) as c:
            assert await node.beat(c) == 200
        wall.now += PREVIOUS_KEY_TOKENS_S  # the window is over
        await node.register(behind.app)  # an old-key token (a leaked key's holder's alike)
        before = len(verifies)
        with caplog.at_level(logging.INFO, "LLM_Mesh"):
            async with _from(rotated.app, HOME) as c:
                assert await node.beat(c) == 404  # before: 200, taken for as long as kept
                assert await node.beat(c) == 404
        assert len(verifies) == before  # nothing verified
        said = [r for r in caplog.records if "no longer taken" in r.getMessage()]
        assert len(said) == 1, said  # once
        # the node registers again there and beats on with the new key's token
        assert await node.beat_as_agent(rotated.app) == 200
        assert await node.beat_as_agent(rotated.app) == 200


async def test_a_restart_after_the_window_does_not_reopen_it(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    home = tmp_path / "r0"
    _rotated(home, old)
    async with running(home, store=store, signed=True, wall_clock=wall, gateway_key=new):
        pass  # the rotation's first start here
    kept = json.loads((home / SINCE_FILE).read_bytes())
    assert kept == {"previous_public_key": encode_public_key(public_key_of(old)), "since": wall()}
    assert (home / SINCE_FILE).stat().st_mode & 0o077 == 0
    wall.now += PREVIOUS_KEY_TOKENS_S + 3600  # restarted an hour after the window
    async with (
        running(home, store=store, signed=True, wall_clock=wall, gateway_key=new) as rotated,
        replicas(tmp_path / "b", store, wall, old) as (behind,),
    ):
        await node.register(behind.app)
        await _fill_the_total(rotated.app, node.node)
        before = len(verifies)
        async with _from(rotated.app, HOME) as c:
            assert await node.beat(c) == 404  # a window from each start: 200
        assert len(verifies) == before


async def test_the_next_rotation_opens_a_window_of_its_own(
    tmp_path: Path, verifies: list[int]
) -> None:
    """``registry.key.previous.since`` of an earlier rotation (another previous key) does
    not close the next rotation's window; a garbled one is written again."""
    store, wall = MemoryStore(), Wall()
    first, old, new = (Ed25519PrivateKey.generate() for _ in range(3))
    node = CountingNode(make_node(wall, await operator(store)))
    home = tmp_path / "r0"
    home.mkdir()
    stale = {"previous_public_key": encode_public_key(public_key_of(first)), "since": 1.0}
    (home / SINCE_FILE).write_text(json.dumps(stale))
    _rotated(home, old)
    async with replicas(tmp_path, store, wall, new, old) as (rotated, behind):
        await node.register(behind.app)
        await _fill_the_total(rotated.app, node.node)
        async with _from(rotated.app, HOME) as c:
            assert await node.beat(c) == 200
    assert json.loads((home / SINCE_FILE).read_bytes())["since"] == wall()
    (home / SINCE_FILE).write_text("{not json")
    async with replicas(tmp_path, store, wall, new) as (rotated,):
        pass
    assert json.loads((home / SINCE_FILE).read_bytes())["since"] == wall()
