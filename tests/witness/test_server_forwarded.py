"""Whose ``X-Forwarded-For`` the witness server believes: nobody's (found 2026-12-06, trust36).

``witness/server.serve`` runs uvicorn with its defaults, and uvicorn's ``proxy_headers=True``
rewrites the ASGI scope's client (and scheme) from ``X-Forwarded-For`` / ``-Proto`` for any
peer ``$FORWARDED_ALLOW_IPS`` names, read from the process's environment (``*`` in many
container images). The witness goes by no client address today, so nothing was lost yet;
but whatever comes to go by one (a log line, a per-address bound) would have believed a
stranger. Here the very config ``serve`` builds is loaded as uvicorn loads it (its
middleware included) in front of an app that records its scope, with the environment
trusting the stranger; the assertion failed before the fix (the client was ``127.0.0.1``,
the scheme ``https``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.witness import server as server_mod
from LLM_Mesh.witness.server import WitnessService
from tests.core.test_witness import KEYS

STRANGER = ("203.0.113.9", 40000)
FORGED = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("trusted", ["*", STRANGER[0]], ids=["star", "one_peer"])
async def test_a_forged_forwarded_for_is_not_believed(
    trusted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", trusted)
    seen: list[dict[str, Any]] = []

    async def recording_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    configs: list[Any] = []

    class CapturingServer:  # serve() builds the config and runs it: kept, not run
        def __init__(self, config: Any) -> None:
            configs.append(config)

        def run(self, sockets: Any = None) -> None:
            pass

    monkeypatch.setattr(server_mod, "witness_app", lambda service: recording_app)
    monkeypatch.setattr(uvicorn, "Server", CapturingServer)
    service = WitnessService(
        Ed25519PrivateKey.generate(), "w.test/x", tmp_path / "witness_state.json", KEYS
    )
    server_mod.serve(service, None)  # type: ignore[arg-type]  # the fake runs no socket
    (config,) = configs
    config.load()  # the app uvicorn serves: its proxy-headers middleware, if any, included
    transport = httpx.ASGITransport(app=config.loaded_app, client=STRANGER)
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as c:
        r = await c.post("/add-checkpoint", content=b"x", headers=FORGED)
    assert r.status_code == 204
    assert seen[0]["client"] == STRANGER and seen[0]["scheme"] == "http", seen[0]
