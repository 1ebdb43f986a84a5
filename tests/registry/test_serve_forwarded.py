"""Whose ``X-Forwarded-For`` a replica believes (checked 2026-12-03 walking docs/deploy.md):
the client address that rate limits, anonymous idempotency keys, the counts of wrong
credentials and ``/metrics`` (loopback) go by is a header only from a trusted proxy:
loopback, and the balancers ``--trusted-proxies`` names. Here the very config ``serve()``
builds is loaded as uvicorn loads it, and requests with a forged header are sent through it:
from anyone else the header is ignored, and a trusted balancer's own ``$remote_addr`` (the
rightmost entry) is what counts.

Found 2026-12-06 (attack35b): ``serve()`` handed uvicorn no ``forwarded_allow_ips``, so
uvicorn read ``$FORWARDED_ALLOW_IPS`` (``*`` in many container images, or the stranger's
own network set for another program): a stranger's ``X-Forwarded-For: 127.0.0.1`` made
them this machine (``/metrics``, no anonymous limit, no count of wrong credentials). Now the
replica never reads it (``core/trusted_proxies.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from LLM_Mesh import heap
from LLM_Mesh.config import Settings
from LLM_Mesh.core.trusted_proxies import parse_trusted_proxies
from LLM_Mesh.registry import app as registry_app
from LLM_Mesh.registry import stop_watchdog


def _served_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> uvicorn.Config:
    """The uvicorn config ``registry serve --host 0.0.0.0`` runs with (not run)."""
    seen: dict[str, Any] = {}

    def capture(app: Any, bound_s: float, database: str | None = None, **config: Any) -> None:
        seen.update(config)  # (``database``: run_bounded's own, not uvicorn's: fulldisk42)

    monkeypatch.setattr(stop_watchdog, "run_bounded", capture)
    monkeypatch.setattr(heap, "cap_arenas", lambda _n: None)  # no mallopt in the test process
    monkeypatch.setattr(registry_app, "create_registry_app", lambda _settings, **_kw: _echo)
    registry_app.serve(Settings(home=tmp_path), host="127.0.0.1", port=0, **kw)
    config = uvicorn.Config(_echo, **seen)
    config.load()
    return config


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers the client address it was given (after uvicorn's middleware)."""
    if scope["type"] != "http":
        return
    host = (scope.get("client") or ("",))[0]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": host.encode()})


def _client_seen(config: uvicorn.Config, peer: str, forwarded: str | None) -> str:
    return asyncio.run(_ask(config, peer, forwarded))


async def _ask(config: uvicorn.Config, peer: str, forwarded: str | None) -> str:
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://r1") as client:
        return (await client.get("/metrics", headers=headers)).text


@pytest.mark.parametrize("forged", ["127.0.0.1", "10.1.2.3", "127.0.0.1, 10.1.2.3"])
def test_a_forged_header_from_anyone_but_loopback_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forged: str
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    config = _served_config(tmp_path, monkeypatch)
    assert _client_seen(config, "192.0.2.9", forged) == "192.0.2.9"


def test_a_balancer_on_this_machine_names_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx on the replica's machine, ``proxy_set_header X-Forwarded-For $remote_addr``; a
    client's own forged entry before it (``$proxy_add_x_forwarded_for``) does not count."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    config = _served_config(tmp_path, monkeypatch)
    assert _client_seen(config, "127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert _client_seen(config, "127.0.0.1", "127.0.0.1, 203.0.113.7") == "203.0.113.7"
    assert _client_seen(config, "127.0.0.1", None) == "127.0.0.1"


@pytest.mark.parametrize("hostile", ["*", "192.0.2.9", "192.0.2.0/24", "0.0.0.0/0"])
@pytest.mark.parametrize("forged", ["127.0.0.1", "10.1.2.3"])
def test_forwarded_allow_ips_in_the_environment_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str, forged: str
) -> None:
    """``*`` (a container image's), or the stranger's own address or network: before the
    fix uvicorn read it, and the stranger at 192.0.2.9 was 127.0.0.1 (this machine) or
    anyone it named (a new address per request: no rate limit). All 8 cases failed."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", hostile)
    config = _served_config(tmp_path, monkeypatch)
    assert _client_seen(config, "192.0.2.9", forged) == "192.0.2.9"
    # zero configuration: a balancer on this machine still names its client
    assert _client_seen(config, "127.0.0.1", "203.0.113.7") == "203.0.113.7"


def test_trusted_proxies_names_that_balancer_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # ignored, whatever it says
    proxies = parse_trusted_proxies("10.0.0.5, 10.9.0.0/16")  # balancers on other machines
    config = _served_config(tmp_path, monkeypatch, trusted_proxies=proxies)
    assert _client_seen(config, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert _client_seen(config, "10.9.3.4", "127.0.0.1, 203.0.113.8") == "203.0.113.8"
    assert _client_seen(config, "127.0.0.1", "203.0.113.9") == "203.0.113.9"  # loopback too
    assert _client_seen(config, "192.0.2.9", "127.0.0.1") == "192.0.2.9"
    assert _client_seen(config, "10.0.0.6", "127.0.0.1") == "10.0.0.6"


def test_a_dual_stack_socket_shows_an_ipv4_balancer_as_mapped_and_it_is_still_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review35c: ``--workers N --host ::`` binds one IPv6 socket that takes IPv4 too
    (``server_process.shared_socket``: no ``IPV6_V6ONLY``), where an IPv4 peer is
    ``::ffff:10.0.0.5``; uvicorn matched that to no name of ``--trusted-proxies 10.0.0.5``,
    so every client was the balancer (one anonymous limit for all). Failed before the fix:
    ``::ffff:10.0.0.5`` was the client."""
    proxies = parse_trusted_proxies("10.0.0.5, 10.9.0.0/16")
    config = _served_config(tmp_path, monkeypatch, trusted_proxies=proxies)
    assert _client_seen(config, "::ffff:10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert _client_seen(config, "::ffff:10.9.3.4", "203.0.113.8") == "203.0.113.8"
    assert _client_seen(config, "::ffff:127.0.0.1", "203.0.113.9") == "203.0.113.9"
    # nobody else: a mapped stranger, or one beside the network, is its own address
    assert _client_seen(config, "::ffff:10.0.0.6", "127.0.0.1") == "::ffff:10.0.0.6"
    assert _client_seen(config, "::ffff:10.8.255.1", "127.0.0.1") == "::ffff:10.8.255.1"
