"""Beat tokens across a rolling ``registry.key`` rotation (found open 2026-12-07, beatrot40).

Replicas of one registry restarted one by one on a new ``registry.key`` (the old one moved
to ``registry.key.previous`` beside it: docs/deploy.md) refused the beat tokens of the
replicas still on the old key, and those replicas the new ones': past the counts of forged
beats a node whose beat crossed over was told to register again (404 ``unknown_node``),
a registration storm for as long as the rotation rolled. A replica holding
``registry.key.previous`` now also takes tokens MACed under that key (it makes tokens under
the new key only); a replica still on the old key cannot know the new key, so a new-key
token there is still refused, and the node registers again there once, then beats on with
that replica's token (one registration each time its beats cross from a rotated replica to
a flooded one still on the old key, until that one restarts on the new key). Two real registry apps on one store, the real ``SignedNodeAuth``."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from LLM_Mesh.core.beat_mac import BeatMac
from LLM_Mesh.registry.gateway_key import PREVIOUS_KEY_FILE
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, make_node, operator
from tests.registry.test_beatkey39_replicas import CountingNode, replicas
from tests.registry.test_beattoken38_tokens import _fill_the_total
from tests.registry.test_heartbeat_signature_tries import HOME
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


def _rotated(home: Path, previous: Ed25519PrivateKey) -> None:
    """The operator's rotation at one replica: the old key beside the new as
    ``registry.key.previous`` (the new one is given to the app)."""
    home.mkdir(parents=True, exist_ok=True)
    pem = previous.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (home / PREVIOUS_KEY_FILE).write_bytes(pem)
    (home / PREVIOUS_KEY_FILE).chmod(0o600)


async def test_a_rotated_replica_takes_the_old_keys_tokens(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _rotated(tmp_path / "r0", old)  # replica 0 restarted on the new key, 1 not yet
    async with replicas(tmp_path, store, wall, new, old) as (rotated, behind):
        await node.register(behind.app)  # a token under the old key
        await _fill_the_total(rotated.app, node.node)
        before = len(verifies)
        async with _from(rotated.app, HOME) as c:
            # before: 404 ("register again"), nothing verified
            assert await node.beat(c) == 200
        assert node.registrations == 1 and len(verifies) - before == 1
        # the answer's token is under the new key: the replica behind cannot know it, so
        # there the node registers again, once, and beats on with that replica's token
        await _fill_the_total(behind.app, node.node)
        seen = [await node.beat_as_agent(behind.app) for _ in range(3)]
        assert seen == [200] * 3 and node.registrations == 2, (seen, node.registrations)
        # ... which the rotated replica takes (before: 404 again)
        assert await node.beat_as_agent(rotated.app) == 200
        assert node.registrations == 2, node.registrations


async def test_a_rotated_replica_makes_tokens_under_the_new_key_only(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _rotated(tmp_path / "r0", old)
    async with replicas(tmp_path, store, wall, new) as (rotated,):
        await node.register(rotated.app)
        now = wall()
        assert BeatMac.of_registry_key(new).holds(node.node.node_id, node.token, now)
        assert not BeatMac.of_registry_key(old).holds(node.node.node_id, node.token, now)


async def test_a_replica_without_the_previous_key_refuses_its_tokens(
    tmp_path: Path, verifies: list[int]
) -> None:
    """Once ``registry.key.previous`` is removed (the rotation done), the old key's tokens
    are refused as any other key's."""
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    async with replicas(tmp_path, store, wall, new, old) as (done, behind):
        await node.register(behind.app)
        await _fill_the_total(done.app, node.node)
        before = len(verifies)
        async with _from(done.app, HOME) as c:
            assert await node.beat(c) == 404
        assert len(verifies) == before
