"""The rotation chain a registry keeps and announces (``registry/key_history.py``): each
rotation (``registry.key`` moved to ``registry.key.previous``) adds a link to
``registry.key.rotations``, and every registration answer carries them all."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.key_chain import MAX_CHAIN_LINKS, follow_chain
from LLM_Mesh.core.key_rotation import rotation_statement
from LLM_Mesh.registry.gateway_key import registry_key_path
from LLM_Mesh.registry.key_history import key_rotations, rotations_path
from tests.registry.helpers import make_settings, registration, running


def _rotate(home: Path) -> None:
    """The operator's rotation (docs/deploy.md): the key moved aside, over the one
    before; the registry makes a new one at start."""
    (home / "registry.key").replace(home / "registry.key.previous")


async def _answer(home: Path) -> tuple[str, dict[str, object]]:
    async with running(home) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        return h.runtime.signer.public_key, r.json()


async def test_the_registry_announces_every_rotation_it_made(tmp_path: Path) -> None:
    """Found 2026-12-03: only the last rotation was announced (``registry.key.previous``
    holds one key), so a node two rotations behind could not follow."""
    first, answer = await _answer(tmp_path)
    assert answer.get("key_rotations") is None and answer.get("key_rotation") is None
    keys = [first]
    for _ in range(3):
        _rotate(tmp_path)
        key, answer = await _answer(tmp_path)
        keys.append(key)
    chain = answer["key_rotations"]
    assert isinstance(chain, list) and len(chain) == 3
    assert answer["key_rotation"] == chain[-1]
    assert follow_chain(chain, first, keys[-1]) == keys
    assert follow_chain(chain, keys[2], keys[-1]) == keys[2:]
    # a restart changes nothing; the previous key may go: the statements are kept
    (tmp_path / "registry.key.previous").unlink()
    key, again = await _answer(tmp_path)
    assert key == keys[-1] and again["key_rotations"] == chain


async def test_the_one_step_layout_and_a_replica_given_the_files(tmp_path: Path) -> None:
    """``registry.key.previous`` alone (a registry older than the chain) is one link; a
    replica given the same key files announces the same chain, and one given
    ``registry.key.rotations`` without the previous key too."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    old, _ = await _answer(a)
    _rotate(a)
    b.mkdir()
    c.mkdir()
    new, answer = await _answer(a)
    for name in ("registry.key", "registry.key.previous"):
        shutil.copy2(a / name, b / name)
    shutil.copy2(a / "registry.key", c / "registry.key")
    shutil.copy2(a / "registry.key.rotations", c / "registry.key.rotations")
    assert len(answer["key_rotations"]) == 1  # type: ignore[arg-type]
    assert (await _answer(b))[1]["key_rotations"] == answer["key_rotations"]
    assert (await _answer(c))[1]["key_rotations"] == answer["key_rotations"]
    assert follow_chain(answer["key_rotations"], old, new) == [old, new]


def _pub(key: Ed25519PrivateKey) -> str:
    return encode_public_key(public_key_of(key))


def test_the_chain_is_bounded_to_the_newest_links(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    keys = [Ed25519PrivateKey.generate() for _ in range(MAX_CHAIN_LINKS + 2)]
    links = [rotation_statement(x, y) for x, y in itertools.pairwise(keys[:-1])]
    rotations_path(settings).write_text(json.dumps(links))
    previous = registry_key_path(settings).with_name("registry.key.previous")
    shutil.move(_write_key(tmp_path / "k", keys[-2]), previous)
    chain = key_rotations(settings, keys[-1])
    assert len(chain) == MAX_CHAIN_LINKS
    assert chain[-1]["public_key"] == _pub(keys[-1])
    assert json.loads(rotations_path(settings).read_text()) == chain


def _write_key(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return path


async def test_a_lost_key_announces_nothing_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost ``registry.key`` signs nothing: the kept chain ends at it, not at the key made
    after it, so no rotation is announced, and the registry says what the nodes need."""
    await _answer(tmp_path)
    _rotate(tmp_path)
    await _answer(tmp_path)
    kept = rotations_path(make_settings(tmp_path)).read_text()
    (tmp_path / "registry.key").unlink()  # lost
    (tmp_path / "registry.key.previous").unlink()
    with caplog.at_level(logging.WARNING):
        _, answer = await _answer(tmp_path)
    assert answer.get("key_rotations") is None and answer.get("key_rotation") is None
    said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "llm-mesh node keys forget-gateway" in said
    assert rotations_path(make_settings(tmp_path)).read_text() == kept  # left as it was


def test_a_stale_previous_key_does_not_fork_the_kept_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03 (review): ``registry.key`` lost after two rotations while
    ``registry.key.previous`` (the key before it) was still there: the registry had that key
    sign the new one, a second statement of one key (a fork, which every node refuses), then
    rewrote ``registry.key.rotations`` to that one link: the nodes that had followed the
    chain to the lost key were stranded and the kept chain was gone. Now it makes no such
    statement: as for any lost key, nothing is announced and the file is left as it was."""
    settings = make_settings(tmp_path)
    k0, k1, k2, k3 = (Ed25519PrivateKey.generate() for _ in range(4))
    kept = [rotation_statement(k0, k1), rotation_statement(k1, k2)]
    rotations_path(settings).write_text(json.dumps(kept))
    _write_key(tmp_path / "registry.key.previous", k1)  # still there; k2 lost, k3 made
    with caplog.at_level(logging.WARNING):
        chain = key_rotations(settings, k3)
    assert chain == []
    assert json.loads(rotations_path(settings).read_text()) == kept
    said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "already signed the move to another key" in said
    assert "llm-mesh node keys forget-gateway" in said
    # the rotation made as documented (the lost key's successor signed by it) still links
    assert len(key_rotations(settings, k2)) == 2
