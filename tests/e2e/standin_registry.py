"""A stand-in registry for process tests of a node: it takes a node's registration (with
a gateway key of its own, so it can sign the inference requests a test sends the node, as
the gateway does) and answers heartbeats and the goodbye; then it can go away (``close``:
its port refuses connections, the node's kept-alive ones are closed) or hang (``mode =
"hang"``: connections accepted, never answered). :func:`start_node` starts the node
process (``llm-mesh node start``, ``sim`` engine) against it.

A bare HTTP/1.1 server on asyncio, in the test's own event loop. Nothing here checks the
node's signatures: what is tested is the node's side.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_auth import GatewaySigner


class StandIn:
    """The registry's side of registration and heartbeats; ``mode``: answer | hang."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.signer = GatewaySigner(Ed25519PrivateKey.generate(), time.time)
        self.node_id: str | None = None
        self.registrations = 0
        self.server: asyncio.Server | None = None
        self.conns: list[asyncio.StreamWriter] = []

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()  # no new connections: refused
            for w in self.conns:  # and the node's kept-alive ones closed
                w.close()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conns.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                size = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        size = int(line.split(":", 1)[1])
                body = await reader.readexactly(size) if size else b""
                if self.mode == "hang":
                    await asyncio.sleep(3600)
                answer: dict[str, object] = {"ok": True}
                status = "200 OK"
                if method == "POST" and path == "/mesh/nodes":
                    reg = json.loads(body)
                    self.node_id = reg["node_id"]
                    self.registrations += 1
                    status = "201 Created"
                    answer = {
                        "node_id": reg["node_id"],
                        "heartbeat_interval_s": 1.0,
                        "registry_time": time.time(),
                        "registry_id": self.signer.registry_id,
                        "registry_public_key": self.signer.public_key,
                    }
                elif method == "DELETE":
                    status, answer = "204 No Content", {}
                data = b"" if status.startswith("204") else json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def stream(
        self, node_url: str, model: str, started: asyncio.Event, max_tokens: int = 30_000
    ) -> None:
        """One long streamed chat request to the node, signed as the gateway would;
        ``started`` is set at its first line (or its end, whatever came)."""
        path = "/v1/chat/completions"
        body = json.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": "a long answer"}],
                "max_tokens": max_tokens,
                "stream": True,
            }
        ).encode()
        if self.node_id is None:
            raise RuntimeError("no node registered yet")
        headers = self.signer.headers(
            self.node_id, uuid.uuid4().hex, path, hashlib.sha256(body).hexdigest()
        )
        headers["content-type"] = "application/json"
        try:
            async with (
                httpx.AsyncClient(timeout=60) as client,
                client.stream("POST", node_url + path, content=body, headers=headers) as r,
            ):
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code} {(await r.aread())[:200]!r}")
                async for _ in r.aiter_lines():
                    started.set()
        except httpx.HTTPError:
            pass  # the node went away mid-stream: what a shutdown does
        finally:
            started.set()


def start_node(
    home: Path, registry_url: str, port: int, *, tokens_per_s: float = 0.5, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """``llm-mesh node start`` (``sim`` engine, ``mistral-7b``, loopback) against
    ``registry_url``, JSON log lines to ``home/node.log``; the process and the log's path."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "node.log"
    full_env = dict(
        os.environ, LLM_MESH_HOME=str(home), PYTHONUNBUFFERED="1", LLM_MESH_LOG_FORMAT="json",
        **env,
    )  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "LLM_Mesh.cli", "node", "start",
                "--registry", registry_url, "--model", "mistral-7b", "--engine", "sim",
                "--sim-tokens-per-s", str(tokens_per_s), "--host", "127.0.0.1",
                "--port", str(port), "--no-config",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=full_env,
        )  # fmt: skip
    return proc, log_path


async def wait_serving(node_url: str, reg: StandIn | None, timeout_s: float = 60.0) -> None:
    """Until the node answers its health check (and, given ``reg``, registered there)."""
    async with httpx.AsyncClient() as client:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                r = await client.get(node_url + "/mesh/health", timeout=1)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code < 500 and (reg is None or reg.registrations):
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the node at {node_url} was not serving after {timeout_s:.0f} s")


async def exit_time(proc: subprocess.Popen[bytes], limit_s: float) -> float:
    """Seconds from now until ``proc`` exited (killed past ``limit_s``: then inf)."""
    t = time.perf_counter()
    while proc.poll() is None:
        if time.perf_counter() - t > limit_s:
            proc.kill()
            proc.wait(5)
            return float("inf")
        await asyncio.sleep(0.02)
    return time.perf_counter() - t
