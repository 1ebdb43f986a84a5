"""A staged next key: replicas not yet switched take the new key's beat tokens (rot41).

During a rolling rotation a replica still on the old key refused the tokens a switched
replica made (it cannot know the new key): past its counts of forged beats a node whose
beat crossed over was told to register again, at each crossing (beatrot40's "not
possible"). Given the new key beforehand as ``registry.key.next`` (docs/deploy.md,
"Rotating ``registry.key``", step 0), a replica takes tokens under it too, makes none under
it, and signs nothing with it. Two real registry apps on one store, the real
``SignedNodeAuth`` (as ``test_beatrot40_rotation.py``)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from LLM_Mesh.core.beat_mac import PREVIOUS_KEY_TOKENS_S, BeatMac
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.registry.gateway_key import NEXT_KEY_FILE
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, make_node, operator
from tests.registry.test_beatkey39_replicas import CountingNode, replicas
from tests.registry.test_beatrot40_rotation import _rotated
from tests.registry.test_beattoken38_tokens import _fill_the_total
from tests.registry.test_heartbeat_signature_tries import HOME
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


def _staged(home: Path, new: Ed25519PrivateKey) -> None:
    """Step 0 of the rotation at one replica: the new key beside the current one."""
    home.mkdir(parents=True, exist_ok=True)
    pem = new.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (home / NEXT_KEY_FILE).write_bytes(pem)
    (home / NEXT_KEY_FILE).chmod(0o600)


async def test_a_replica_with_the_staged_key_takes_the_switched_replicas_tokens(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _rotated(tmp_path / "r0", old)  # replica 0 switched to the new key
    _staged(tmp_path / "r1", new)  # replica 1 still on the old key, the new one staged
    async with replicas(tmp_path, store, wall, new, old) as (switched, behind):
        await node.register(switched.app)  # a token under the new key
        await _fill_the_total(behind.app, node.node)
        before = len(verifies)
        async with _from(behind.app, HOME) as c:
            assert await node.beat(c) == 200  # before: 404, "register again"
        assert node.registrations == 1 and len(verifies) - before == 1
        # its answer's token is the old key's, which the switched replica takes (beatrot40)
        await _fill_the_total(switched.app, node.node)
        assert await node.beat_as_agent(switched.app) == 200
        assert await node.beat_as_agent(behind.app) == 200
        assert node.registrations == 1, node.registrations
        # nothing is made under the staged key, nor signed with it
        now = wall()
        assert BeatMac.of_registry_key(old).holds(node.node.node_id, node.token, now)
        gateway = behind.app.state.runtime.gateway
        assert gateway.registry_id == registry_id_for(public_key_of(old))


async def test_a_staged_key_that_is_the_current_one_is_no_other(
    tmp_path: Path, verifies: list[int]
) -> None:
    """After the switch a leftover ``registry.key.next`` equal to ``registry.key`` changes
    nothing; a third key's tokens are still refused."""
    store, wall = MemoryStore(), Wall()
    new, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _staged(tmp_path / "r0", new)
    async with replicas(tmp_path, store, wall, new, other) as (switched, stranger):
        await node.register(stranger.app)  # a token under a key this registry never had
        await _fill_the_total(switched.app, node.node)
        before = len(verifies)
        async with _from(switched.app, HOME) as c:
            assert await node.beat(c) == 404
        assert len(verifies) == before


async def test_a_staged_key_that_is_the_previous_one_does_not_reopen_its_window(
    tmp_path: Path, verifies: list[int]
) -> None:
    """``registry.key.next`` left as (or copied from) ``registry.key.previous``: the old
    key's tokens are refused once its window is over, as without it (found 2026-12-07,
    review41: taken as the staged key's, for as long as the file stayed, the window of a
    leaked old key's tokens reopened for good)."""
    store, wall = MemoryStore(), Wall()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    _rotated(tmp_path / "r0", old)
    _staged(tmp_path / "r0", old)  # the old key staged too: a mistake in the file names
    async with replicas(tmp_path, store, wall, new, old) as (rotated, behind):
        wall.now += PREVIOUS_KEY_TOKENS_S  # the previous key's window is over
        await node.register(behind.app)  # an old-key token (a leaked key's holder's alike)
        await _fill_the_total(rotated.app, node.node)
        before = len(verifies)
        async with _from(rotated.app, HOME) as c:
            assert await node.beat(c) == 404  # before: 200
        assert len(verifies) == before
