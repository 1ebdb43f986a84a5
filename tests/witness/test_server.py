"""``witness/server.py``: C2SP tlog-witness ``add-checkpoint`` served (ASGI, no sockets),
with its state on disk: persisted before a 200, read back after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.tlog_witness import MAX_REQUEST, SIZE_TYPE, request_body
from LLM_Mesh.core.witness import cosigners, witness_key
from LLM_Mesh.witness import server as server_mod
from LLM_Mesh.witness.server import WitnessService, parse_listen, witness_app
from LLM_Mesh.witness.state import load_state
from tests.core.test_witness import KEYS, LOG, LOG_PUB, ORIGIN, _leaves, _note, _proof

NAME = "witness.test/push"
KEY = Ed25519PrivateKey.generate()
WK = witness_key(KEY, NAME)


def _service(home: Path) -> WitnessService:
    return WitnessService(KEY, NAME, home / "witness_state.json", KEYS)


async def _post(service: WitnessService, body: bytes | AsyncIterator[bytes]) -> httpx.Response:
    t = httpx.ASGITransport(app=witness_app(service))
    async with httpx.AsyncClient(transport=t, base_url="http://w") as c:
        return await c.post("/add-checkpoint", content=body)


async def test_cosigns_and_persists_before_answering(tmp_path: Path) -> None:
    leaves = _leaves(7)
    svc = _service(tmp_path)
    first = _note(leaves[:3])
    r = await _post(svc, request_body(0, [], first))
    assert r.status_code == 200, r.text
    assert cosigners(first + r.text, [WK]), r.text  # the answer is its cosignature line
    assert load_state(tmp_path / "witness_state.json")[ORIGIN].size == 3  # on disk
    r = await _post(svc, request_body(3, _proof(leaves, 3), _note(leaves)))
    assert r.status_code == 200 and cosigners(_note(leaves) + r.text, [WK])
    assert load_state(tmp_path / "witness_state.json")[ORIGIN].size == 7


async def test_a_replayed_old_request_after_a_restart_is_a_409_with_the_newer_size(
    tmp_path: Path,
) -> None:
    """The attack: the witness restarts (its memory gone) and is sent the request it
    cosigned first again, or a fork of the older size: the state on disk answers."""
    leaves = _leaves(7)
    first = request_body(0, [], _note(leaves[:3]))
    second = request_body(3, _proof(leaves, 3), _note(leaves))
    svc = _service(tmp_path)
    assert (await _post(svc, first)).status_code == 200
    assert (await _post(svc, second)).status_code == 200
    restarted = _service(tmp_path)  # a new process: only the file remains
    for replay in (first, second, request_body(0, [], _note(_leaves(3, fork_at=1)))):
        r = await _post(restarted, replay)
        assert (r.status_code, r.text, r.headers["content-type"]) == (409, "7\n", SIZE_TYPE)
    # the same size, another root, from the right old size: a fork, 409 (not a size)
    r = await _post(restarted, request_body(7, [], _note(_leaves(7, fork_at=4))))
    assert r.status_code == 409 and r.headers["content-type"] != SIZE_TYPE
    assert load_state(tmp_path / "witness_state.json")[ORIGIN].size == 7  # unchanged


async def test_refusals_leave_the_state_file_as_it_was(tmp_path: Path) -> None:
    leaves = _leaves(9)
    svc = _service(tmp_path)
    assert (await _post(svc, request_body(0, [], _note(leaves[:5])))).status_code == 200
    before = (tmp_path / "witness_state.json").read_bytes()
    forked = _leaves(9, fork_at=2)
    bad = _proof(leaves, 5)
    bad[-1] = bytes(32)
    cases = [
        (request_body(5, _proof(forked, 5), _note(forked)), 422),  # a fork at another size
        (request_body(5, bad, _note(leaves)), 422),  # a bad proof
        (request_body(0, [], _note(leaves[:3])), 409),  # a rollback
        (request_body(0, [], _note(leaves, key=Ed25519PrivateKey.generate())), 403),
        (request_body(0, [], _note(leaves, origin="other.test/log")), 404),
        (b"old 5\nnot a proof\n\n" + _note(leaves).encode(), 400),
    ]
    for body, status in cases:
        r = await _post(svc, body)
        assert r.status_code == status, (status, r.text)
    assert (tmp_path / "witness_state.json").read_bytes() == before
    assert svc.state[ORIGIN].size == 5


async def test_an_oversize_body_is_413_and_not_read_whole(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    r = await _post(svc, b"old 0\n\n" + b"x" * MAX_REQUEST)
    assert r.status_code == 413
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        nonlocal sent
        while sent < 100 * MAX_REQUEST:
            sent += 4096
            yield b"y" * 4096

    r = await _post(svc, endless())
    assert r.status_code == 413
    assert not (tmp_path / "witness_state.json").exists()


async def test_two_requests_from_one_old_size_cannot_both_pass(tmp_path: Path) -> None:
    """The spec's race: N and N+K checked against one old size, then N stored last
    (rolling back K leaves). Check and persist are one step: one of them gets 409."""
    leaves = _leaves(9)
    svc = _service(tmp_path)
    assert (await _post(svc, request_body(0, [], _note(leaves[:2])))).status_code == 200
    a = request_body(2, _proof(leaves[:5], 2), _note(leaves[:5]))
    b = request_body(2, _proof(leaves, 2), _note(leaves))
    got = await asyncio.gather(svc.add_checkpoint(b), svc.add_checkpoint(a))
    assert sorted(x.status for x in got) == [200, 409]
    assert svc.state[ORIGIN].size == load_state(tmp_path / "witness_state.json")[ORIGIN].size


async def test_a_failed_save_cosigns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(server_mod, "save_state", broken)
    svc = _service(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        await svc.add_checkpoint(request_body(0, [], _note(_leaves(3))))
    assert svc.state == {}


async def test_the_same_checkpoint_again_is_cosigned_without_a_disk_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's checkpoints are public: anyone can post the last cosigned one again, as
    often as they like. Each is cosigned again (the spec), but the state is unchanged:
    no synced write under the lock (a flood of replays would queue every real push
    behind one fsync each)."""
    saves: list[int] = []
    real = server_mod.save_state

    def counted(path: Path, state: object) -> None:
        saves.append(1)
        real(path, state)  # type: ignore[arg-type]

    monkeypatch.setattr(server_mod, "save_state", counted)
    svc = _service(tmp_path)
    note = _note(_leaves(3))
    assert (await _post(svc, request_body(0, [], note))).status_code == 200
    for _ in range(3):
        r = await _post(svc, request_body(3, [], note))
        assert r.status_code == 200 and cosigners(note + r.text, [WK])
    assert len(saves) == 1
    assert load_state(tmp_path / "witness_state.json")[ORIGIN].size == 3


def test_listen_addresses() -> None:
    assert parse_listen("8810") == ("127.0.0.1", 8810)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_listen("[::1]:8810") == ("::1", 8810)
    for bad in ("", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(ValueError):
            parse_listen(bad)


async def test_replays_and_a_logs_resync_are_not_logged_as_its_misbehaviour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The log's checkpoints are public: anyone can post an older one (a 409 rollback) or
    the newest from the wrong old size (a 409 stale size, also what the log itself sends
    after each restart to learn the witness's size). Neither is evidence against the log:
    not a WARNING with the note (a flood of 16 KiB notes in the witness's log, and false
    alarms); a fork at the cosigned size (two roots the log signed) still is."""
    leaves = _leaves(7)
    svc = _service(tmp_path)
    assert (await _post(svc, request_body(0, [], _note(leaves[:3])))).status_code == 200
    assert (await _post(svc, request_body(3, _proof(leaves, 3), _note(leaves)))).status_code == 200
    caplog.set_level("INFO", logger=server_mod.__name__)
    for replay in (
        request_body(0, [], _note(leaves[:3])),  # an older checkpoint: rollback
        request_body(0, [], _note(leaves)),  # the newest from size 0: the log's resync
        request_body(3, _proof(leaves, 3), _note(leaves)),  # from a stale size
    ):
        r = await _post(svc, replay)
        assert r.status_code == 409 and r.headers["content-type"] == SIZE_TYPE
    assert [x for x in caplog.records if x.levelname == "WARNING"] == []
    r = await _post(svc, request_body(7, [], _note(_leaves(7, fork_at=4))))
    assert r.status_code == 409 and r.headers["content-type"] != SIZE_TYPE
    assert [x.levelname for x in caplog.records if "refused" in x.getMessage()][-1] == "WARNING"


async def test_a_garbage_proof_is_not_logged_as_the_logs_misbehaviour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can post the log's newest checkpoint (public) with a garbage proof: a 422,
    not evidence of a fork (a proof that does not verify proves nothing against the log),
    so INFO without the note, not a WARNING quoting it (found 2026-12-03: docs/security.md,
    "A smaller limit of the witness"). The same size with another root still is one."""
    leaves = _leaves(7)
    svc = _service(tmp_path)
    assert (await _post(svc, request_body(0, [], _note(leaves[:3])))).status_code == 200
    caplog.set_level("INFO", logger=server_mod.__name__)
    garbage = [bytes(32)] * 3
    newest = _note(leaves)
    for body, status in (
        (request_body(3, garbage, newest), 422),  # a garbage proof
        (request_body(3, [], newest), 422),  # no proof at all
        (request_body(8, [], newest), 400),  # an old size above the checkpoint's
    ):
        r = await _post(svc, body)
        assert r.status_code == status, r.text
    refused = [x for x in caplog.records if "refused" in x.getMessage()]
    assert [x.levelname for x in refused] == ["INFO"] * 3
    assert not any(newest in x.getMessage() for x in caplog.records)
    r = await _post(svc, request_body(3, [], _note(_leaves(3, fork_at=1))))  # the fork
    assert r.status_code == 409 and r.headers["content-type"] != SIZE_TYPE
    last = [x for x in caplog.records if "refused" in x.getMessage()][-1]
    assert last.levelname == "WARNING" and "split" in last.getMessage()
    assert svc.state[ORIGIN].size == 3


async def test_a_signed_empty_checkpoint_with_a_root_is_logged_as_evidence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint of size 0 whose root is not the empty tree's, signed by the log: no
    proof is involved (nobody but the log could make it), so it is evidence of the log's
    misbehaviour (a split view of the empty tree), answered 422 as the spec says. Before:
    logged at INFO without the note, as a garbage proof is (found 2026-12-03: the
    listening witness's INFO for 422s dropped this evidence too); a WARNING with it now."""
    svc = _service(tmp_path)
    caplog.set_level("INFO", logger=server_mod.__name__)
    bad = sign_checkpoint(LOG, LOG_PUB, ORIGIN, 0, bytes(range(32)), 7).note
    r = await _post(svc, request_body(0, [], bad))
    assert r.status_code == 422, r.text
    refused = [x for x in caplog.records if "refused" in x.getMessage()]
    assert [x.levelname for x in refused] == ["WARNING"]
    assert bad in refused[0].getMessage() or repr(bad) in refused[0].getMessage()
    assert ORIGIN not in svc.state
