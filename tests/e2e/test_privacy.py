"""Privacy (issue 8): the registry, the gateway and the nodes keep no prompt and no output.

A marker string, new on every run, goes through a mesh of real processes on loopback,
streamed and not, as chat messages and as completion prompts echoed back into the
output, through a node that fails every request, a node killed mid-stream, and the
request limits' and request validation's refusals. Then every file under every process's
state directory (their stdout/stderr logs at DEBUG level, the SQLite database, whatever
else a node wrote), read as bytes, and every column of every row of every table of the
store (found by SQLAlchemy reflection; SQLite and PostgreSQL) are searched: the marker
is seen nowhere. The output is checked to hold the marker, so the search would see it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.node.keys import load_or_create_key
from tests.e2e.conftest import HAVE_MODEL, free_port
from tests.waiting import START_S, scaled

pytestmark = pytest.mark.e2e

MODEL = "gemma-3-270m"
FAST = ["--sim-tokens-per-s", "2000", "--sim-ttft-s", "0.001"]


@dataclass
class _Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    port: int


@dataclass
class Mesh:
    """A registry and nodes as separate processes, each with its own state directory."""

    root: Path
    database_url: str | None
    procs: dict[str, _Proc] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # node name -> id (from its key)
    operator_token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.procs['registry'].port}"

    def _spawn(self, name: str, args: list[str], port: int, **env: str) -> None:
        home = self.root / name
        (home / "logs").mkdir(parents=True, exist_ok=True)
        log = (home / "logs" / "process.log").open("ab")  # its stdout and stderr
        full_env = {
            **os.environ,
            "LLM_MESH_HOME": str(home),
            "LLM_MESH_HEARTBEAT_S": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        full_env.pop("LLM_MESH_DATABASE_URL", None)
        if name == "registry" and self.database_url:
            full_env["LLM_MESH_DATABASE_URL"] = self.database_url
        if name != "registry":
            full_env["LLM_MESH_OPERATOR_TOKEN"] = self.operator_token
        proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *args, "--verbose"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        self.procs[name] = _Proc(name, proc, log, port)

    def start_registry(self) -> None:
        port = free_port()
        args = ["registry", "serve", "--host", "127.0.0.1", "--port", str(port)]
        self._spawn("registry", [*args, "--allow-private-nodes", "--anonymous-rpm", "0"], port)
        _wait(lambda: _get(self.url + "/healthz") is not None, START_S, self.procs["registry"])
        # an operator for the nodes, made as an admin would, on the registry's store
        env = {**os.environ, "LLM_MESH_HOME": str(self.root / "registry")}
        env.pop("LLM_MESH_DATABASE_URL", None)
        if self.database_url:
            env["LLM_MESH_DATABASE_URL"] = self.database_url
        out = subprocess.run(
            [sys.executable, "-m", "LLM_Mesh.cli", "registry", "operators", "add", "privacy"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        self.operator_token = next(w for w in out.stdout.split() if w.startswith("lmo_"))

    def add_node(self, node_id: str, engine: str, *extra: str) -> None:
        port = free_port()
        # its key, made now in its home (node start reuses it): the id comes from the key
        self.ids[node_id] = load_or_create_key(self.root / node_id / "node.key").node_id
        args = [
            "node", "start", "--registry", self.url, "--model", MODEL, "--engine", engine,
            "--host", "127.0.0.1", "--port", str(port), "--no-config",
        ]  # fmt: skip
        self._spawn(node_id, [*args, *extra], port)

    def wait_healthy(self, node_ids: list[str], timeout: float = START_S) -> None:
        def all_up() -> bool:
            data = _get(self.url + "/mesh/nodes") or {}
            healthy = {n["node_id"] for n in data.get("nodes", []) if n.get("healthy")}
            for nid in node_ids:
                if self.procs[nid].proc.poll() is not None:
                    raise AssertionError(f"node {nid} exited; see {self.root / nid / 'logs'}")
            return healthy >= {self.ids[n] for n in node_ids}

        _wait(all_up, timeout, self.procs["registry"])

    def kill(self, name: str) -> None:
        p = self.procs[name].proc
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop(self) -> None:
        """Nodes first (they deregister), then the registry (it flushes its request log)."""
        for p in sorted(self.procs.values(), key=lambda p: p.name == "registry"):
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
                try:
                    p.proc.wait(20)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait(5)
            p.log.close()


def _get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _wait(ready: Callable[[], bool], timeout: float, proc: _Proc) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.proc.returncode}")
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready after {scaled(timeout):.0f} s")


@contextmanager
def mesh_of(root: Path, database_url: str | None, *, real_node: bool) -> Iterator[Mesh]:
    mesh = Mesh(root, database_url)
    try:
        mesh.start_registry()
        mesh.add_node("good", "sim", *FAST)
        mesh.add_node("failing", "sim", *FAST, "--sim-failure-rate", "1")
        mesh.add_node("victim", "sim", "--sim-tokens-per-s", "20", "--sim-ttft-s", "0.001")
        nodes = ["good", "failing", "victim"]
        if real_node:
            mesh.add_node("real", "llama-cpp", "--n-threads", "2")
            nodes.append("real")
        mesh.wait_healthy(nodes)
        yield mesh
    finally:
        mesh.stop()


# --- the traffic --------------------------------------------------------------------------


def chat(marker: str, **kw: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": f"system {marker} instructions"},
        {"role": "user", "content": [{"type": "text", "text": f"question {marker}?"}]},
    ]
    return {"model": MODEL, "messages": messages, "max_tokens": 12, **kw}


def echo(marker: str, **kw: Any) -> dict[str, Any]:
    """A completion whose output holds the prompt (``echo``): the marker is in the answer."""
    return {
        "model": MODEL,
        "prompt": f"def f():  # {marker}\n",
        "echo": True,
        "max_tokens": 6,
        **kw,
    }


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[int, list[Any]]:
    """POST a stream; its status and its ``data:`` events (JSON decoded; ``[DONE]`` kept)."""
    with client.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, [r.json()]
        events = [ln[5:].strip() for ln in r.iter_lines() if ln.startswith("data:")]
    return 200, [e if e == "[DONE]" else json.loads(e) for e in events]


def text_of(events: list[Any]) -> str:
    out = []
    for e in events:
        for c in e.get("choices", []) if isinstance(e, dict) else []:
            out.append((c.get("delta") or {}).get("content") or c.get("text") or "")
    return "".join(out)


def exercise(mesh: Mesh, marker: str, *, real_node: bool) -> int:
    """Send the marker every way; return how many requests should have been recorded."""
    recorded = 0
    with httpx.Client(base_url=mesh.url, timeout=30) as c:
        # a node that fails after receiving the prompt: non-stream and stream
        r = c.post("/v1/chat/completions", json=chat(marker, allow_nodes=[mesh.ids["failing"]]))
        assert r.status_code >= 500, r.text
        status, _ = stream(
            c, "/v1/chat/completions", chat(marker, allow_nodes=[mesh.ids["failing"]], stream=True)
        )
        assert status >= 500
        recorded += 2
        for _ in range(3):  # failing then good, or good: both paths
            r = c.post(
                "/v1/chat/completions",
                json=chat(marker, allow_nodes=[mesh.ids["failing"], mesh.ids["good"]]),
            )
            assert r.status_code in (200, 502, 503), r.text
            status, events = stream(
                c,
                "/v1/chat/completions",
                chat(marker, allow_nodes=[mesh.ids["failing"], mesh.ids["good"]], stream=True),
            )
            recorded += 2
        # the output holds the marker (echo), non-stream and stream; the non-stream one
        # with a client request id: its answer is kept for replay (on PostgreSQL in the
        # store's idempotency_keys, sealed: shared_idempotency.py)
        r = c.post(
            "/v1/completions",
            json=echo(marker, allow_nodes=[mesh.ids["good"]]),
            headers={"X-Request-Id": "privacy-echo-1"},
        )
        assert r.status_code == 200 and marker in r.json()["choices"][0]["text"], r.text
        status, events = stream(
            c, "/v1/completions", echo(marker, allow_nodes=[mesh.ids["good"]], stream=True)
        )
        assert status == 200 and marker in text_of(events), events
        recorded += 2
        # a node killed mid-stream
        body = chat(marker, allow_nodes=[mesh.ids["victim"]], stream=True, max_tokens=40)
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            seen = 0
            for line in r.iter_lines():
                if line.startswith("data:") and '"content"' in line:
                    seen += 1
                    if seen == 3:
                        mesh.kill("victim")
        recorded += 1
        # refusals: request limits, validation, malformed JSON
        refusals: list[dict[str, Any] | bytes] = [
            chat(marker, stop=[marker] * 5),
            chat(marker, stop=marker * 100),
            {"model": MODEL, "messages": [{"role": "wizard", "content": marker}]},
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": marker}],
                "temperature": marker,
            },
            f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "{marker}"'.encode(),
        ]
        for body in refusals:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = c.post("/v1/chat/completions", content=content)
            assert r.status_code == 400, r.text
        if real_node:  # the real model, streamed: prompt in, its own words out
            status, events = stream(
                c, "/v1/chat/completions", chat(marker, allow_nodes=[mesh.ids["real"]], stream=True)
            )
            assert status == 200 and events[-1] == "[DONE]", events[-3:]
            status, events = stream(
                c, "/v1/completions", echo(marker, allow_nodes=[mesh.ids["real"]], stream=True)
            )
            assert status == 200 and marker in text_of(events)
            recorded += 2
    failing = _get(f"http://127.0.0.1:{mesh.procs['failing'].port}/mesh/info")
    assert failing["requests_failed"] >= 1  # the failing node did receive a prompt
    return recorded


# --- the search ---------------------------------------------------------------------------


def file_sightings(root: Path, marker: str) -> tuple[list[str], int]:
    """Files under ``root`` holding the marker (bytes, any file), and how many were read."""
    needle = marker.encode()
    found, read = [], 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            read += 1
            if needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found, read


async def db_sightings(database_url: str, marker: str) -> tuple[list[str], dict[str, int]]:
    """``table.column`` cells holding the marker, over every table reflection finds; rows per table."""
    engine = create_async_engine(normalize_database_url(database_url))
    found: list[str] = []
    rows: dict[str, int] = {}
    try:
        async with engine.connect() as conn:
            meta = MetaData()
            await conn.run_sync(meta.reflect)
            for table in meta.sorted_tables:
                result = await conn.execute(select(table))
                all_rows = result.all()
                rows[table.name] = len(all_rows)
                for row in all_rows:
                    for column, value in zip(result.keys(), row, strict=True):
                        if marker in str(value) or (
                            isinstance(value, bytes) and marker.encode() in value
                        ):
                            found.append(f"{table.name}.{column}")
    finally:
        await engine.dispose()
    return found, rows


async def check_no_marker_anywhere(
    tmp_path: Path, database_url: str | None, *, real_node: bool
) -> None:
    marker = f"PRIVACY-{secrets.token_hex(12)}"
    root = tmp_path / "mesh"
    with mesh_of(root, database_url, real_node=real_node) as mesh:
        recorded = exercise(mesh, marker, real_node=real_node)
    files, read = file_sightings(root, marker)
    assert files == [], f"the marker was found in {files}"
    url = database_url or f"sqlite:///{root / 'registry' / 'registry.db'}"
    cells, rows = await db_sightings(url, marker)
    assert cells == [], f"the marker was found in {cells}"
    # the search looked at something: the logs, the store's tables and its records
    assert read >= 4 and {"nodes", "requests"} <= set(rows), (read, rows)
    assert rows["requests"] >= recorded and rows["nodes"] >= 3, rows
    for name in ("registry", "good", "failing"):  # every process logged at DEBUG level
        assert " DEBUG " in (root / name / "logs" / "process.log").read_text(errors="replace")


async def test_no_prompt_or_output_is_kept_on_sqlite(tmp_path: Path) -> None:
    await check_no_marker_anywhere(tmp_path, None, real_node=HAVE_MODEL)


@pytest.mark.postgres
async def test_no_prompt_or_output_is_kept_on_postgresql(
    tmp_path: Path, pg_database_url: str
) -> None:
    await check_no_marker_anywhere(tmp_path, pg_database_url, real_node=False)
