"""The node's served log (``node/served_log.py``): a line per request it ended, with the
gateway's id, the model, the counts, the time and the gateway's signature, through the
real node app; never the prompt or the output (a marker in both is searched for in the
file's bytes); bounded by rotation; a write that fails fails no request."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gateway_auth import decode_public_key, gateway_bytes
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.core.served import Served, parse_line
from LLM_Mesh.node.served_log import ServedLog, served_files
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, asgi_client, node_config, sim_engine, wait_until
from tests.node.test_gateway_guard import REMOTE, Registry


async def _registered(settings: Settings, registry: Registry, **config: object) -> NodeService:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    svc = NodeService(
        node_config(register=True, **config), settings, engine=sim_engine(answer_tokens=6),
        http_client=http, hardware=Hardware(cpu_count=2, memory_bytes=1 << 30),
    )  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    return svc


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
async def test_the_served_log_names_each_request_never_its_text(
    settings: Settings, session: bool
) -> None:
    registry = Registry(Ed25519PrivateKey.generate(), session=session)
    svc = await _registered(settings, registry)
    marker = "MARKER-" + secrets.token_hex(8)
    sent = [
        ("/v1/chat/completions", {"model": MODEL, "messages": [
            {"role": "user", "content": f"repeat {marker}"}], "max_tokens": 5}),
        ("/v1/chat/completions", {"model": MODEL, "stream": True, "messages": [
            {"role": "user", "content": f"repeat {marker}"}]}),
        ("/v1/completions", {"model": MODEL, "prompt": f"{marker} ", "echo": True,
                             "max_tokens": 5}),
    ]  # fmt: skip
    bodies = []
    async with asgi_client(svc, client=REMOTE) as c:
        for i, (path, body) in enumerate(sent):
            raw = json.dumps(body).encode()
            bodies.append(raw)
            rid = f"req-{i:032x}"
            r = await c.post(path, content=raw,
                             headers=registry.headers(svc.node_id, raw, path, rid))  # fmt: skip
            assert r.status_code == 200, r.text
            assert marker in r.text or i < 2  # the echo: the output holds it
    await svc.stop()
    path = settings.home / "served.jsonl"
    data = path.read_bytes()
    assert marker.encode() not in data and b"repeat" not in data
    records = [parse_line(line) for line in data.decode().splitlines()]
    assert [r.request_id for r in records] == [f"req-{i:032x}" for i in range(3)]
    key = decode_public_key(registry.signer.public_key)
    for (p, _), raw, r in zip(sent, bodies, records, strict=True):
        assert r.node == svc.node_id and r.model == MODEL and r.outcome == "ok"
        assert r.completion_tokens > 0 and r.prompt_tokens > 0 and r.time_ms > 0
        assert r.gateway == registry.signer.registry_id and r.gateway_ms
        if session:  # a MAC proves nothing to anyone else: not kept
            assert r.auth == "mac" and not r.signature and not r.body_sha256
        else:  # the gateway's signature, checkable by anyone with its public key
            assert r.auth == "signature" and r.body_sha256 == hashlib.sha256(raw).hexdigest()
            key.verify(_unb64(r.signature), gateway_bytes(
                r.gateway, r.node, r.request_id, p, r.gateway_ms, r.body_sha256))  # fmt: skip
    assert records[1].stream and not records[0].stream
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _record(n: int) -> Served:
    return Served(time_ms=n, node="n", request_id=f"req-{n:032x}", model=MODEL,
                  prompt_tokens=1, completion_tokens=1, outcome="ok")  # fmt: skip


def test_rotation_keeps_the_log_bounded_and_the_newest_records(tmp_path: Path) -> None:
    path = tmp_path / "served.jsonl"
    log = ServedLog(path, max_bytes=4096, keep=2)
    for n in range(500):
        assert log.write(_record(n))
    log.close()
    files = served_files(path)
    assert files == [path.with_name("served.jsonl.2"), path.with_name("served.jsonl.1"), path]
    assert all(f.stat().st_size <= 4096 for f in files)
    kept = [parse_line(x) for f in files for x in f.read_text().splitlines()]
    numbers = [r.time_ms for r in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 499  # the newest, in order
    per_file = 4096 // (len(_record(499).to_line()) + 1)
    assert 2 * per_file < len(kept) <= 3 * per_file < 500  # bounded: the oldest went
    # a restart appends to the file where it was
    again = ServedLog(path, max_bytes=4096, keep=2)
    again.write(_record(500))
    again.close()
    assert parse_line(path.read_text().splitlines()[-1]).time_ms == 500


async def test_a_write_that_fails_fails_no_request(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    (settings.home / "served-dir").mkdir(parents=True)
    registry = Registry(Ed25519PrivateKey.generate())
    svc = await _registered(settings, registry, served_log="served-dir")
    raw = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    async with asgi_client(svc, client=REMOTE) as c:
        for i in range(2):
            headers = registry.headers(svc.node_id, raw, rid=f"req-{i:032x}")
            r = await c.post("/v1/chat/completions", content=raw, headers=headers)
            assert r.status_code == 200, r.text
    await svc.stop()
    said = [r for r in caplog.records if "could not write the served log" in r.getMessage()]
    assert len(said) == 1  # once, not per request


async def test_no_log_when_turned_off(settings: Settings) -> None:
    registry = Registry(Ed25519PrivateKey.generate())
    svc = await _registered(settings, registry, served_log="")
    assert svc.served is None
    raw = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    async with asgi_client(svc, client=REMOTE) as c:
        r = await c.post("/v1/chat/completions", content=raw,
                         headers=registry.headers(svc.node_id, raw))  # fmt: skip
        assert r.status_code == 200
    await svc.stop()
    assert not (settings.home / "served.jsonl").exists()
