"""The home's admin key goes only to a URL that proved it holds the registry's key
(``admin_proof.py``, ``core/registry_identity.py``, ``GET /mesh/identity``).

Found 2026-12-03: while the mesh was down, any local program could bind the port recorded
in ``$LLM_MESH_HOME/admin.key.registry`` and receive ``admin.key`` from the next
``health_check_all_hosts()`` or ``llm-mesh registry canary run``. Each impostor here is a
real server on a real port that records what it receives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from LLM_Mesh.admin_proof import IDENTITY_PATH
from LLM_Mesh.cli.main import app as cli_app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.b64url import encode as b64
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.registry_identity import IdentityProver
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import InvalidCredential, RegistryUnreachable
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh, _Bridge
from tests.ports import free_port

ADMIN_KEY = "local-mesh-admin-key-0123456789abcdef"
runner = CliRunner()


class Impostor:
    """A program bound to the recorded port while the mesh is down: it answers every admin
    call as the registry would, and ``GET /mesh/identity`` with ``identity`` (None: 404)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.identity: dict[str, Any] | None = None
        self.identity_status = 200
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _answer(self) -> None:
                impostor.seen.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith(IDENTITY_PATH):
                    body, status = impostor.identity, impostor.identity_status
                    if body is None:
                        body, status = {"detail": "Not Found"}, 404
                else:
                    body, status = {"results": [], "models": [], "nodes": []}, 200
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def got_the_key(self) -> bool:
        return any(ADMIN_KEY in json.dumps(headers) or ADMIN_KEY in path
                   for _, path, headers in self.seen)  # fmt: skip


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    imp = Impostor()
    yield imp
    imp.close()


def home_of(tmp_path: Path, url: str, name: str = "home") -> tuple[Path, Ed25519PrivateKey]:
    """A home after its registry ran at ``url`` (the record it wrote) and stopped."""
    home = tmp_path / name
    home.mkdir()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (home / "registry.key").write_bytes(pem)
    (home / "admin.key").write_text(ADMIN_KEY + "\n")
    pub = encode_public_key(public_key_of(key))
    (home / ADMIN_KEY_REGISTRY_FILE).write_text(f"{url}\nkey={pub}\n")
    return home, key


async def seed_call(home: Path, url: str, http: httpx.AsyncClient | None = None) -> Any:
    reg = DistributedModelRegistry(Settings(home=home), registry_url=url, http_client=http)
    return await reg.health_check_all_hosts()


# --- an impostor on the recorded port never sees the key ---------------------------------


async def test_the_seed_call_does_not_hand_the_key_to_a_program_on_the_port(
    tmp_path: Path, impostor: Impostor
) -> None:
    home, _ = home_of(tmp_path, impostor.url)
    with pytest.raises(InvalidCredential, match="did not prove it is this home's registry"):
        await seed_call(home, impostor.url)
    assert not impostor.got_the_key()
    assert [path.split("?")[0] for _, path, _ in impostor.seen] == [IDENTITY_PATH]


def test_canary_run_does_not_hand_the_key_to_a_program_on_the_port(
    tmp_path: Path, impostor: Impostor
) -> None:
    home, _ = home_of(tmp_path, impostor.url)
    out = runner.invoke(
        cli_app, ["registry", "canary", "run", "--registry", impostor.url, "--home", str(home)],
        env={"COLUMNS": "300", "LLM_MESH_ADMIN_KEY": ""},
    )  # fmt: skip
    assert out.exit_code != 0
    assert "did not prove" in out.output
    assert ADMIN_KEY not in out.output
    assert not impostor.got_the_key()


async def test_a_proof_refused_for_now_says_so_and_sends_no_key(
    tmp_path: Path, impostor: Impostor
) -> None:
    """Found 2026-12-03 (review): a 429 to the proof (the registry's per-address limit) was
    reported as "another program may be listening on its port", sending the user after an
    impostor that is not there."""
    home, _ = home_of(tmp_path, impostor.url)
    impostor.identity, impostor.identity_status = {"error": {"message": "slow down"}}, 429
    with pytest.raises(InvalidCredential, match=r"HTTP 429.*try again in a minute") as caught:
        await seed_call(home, impostor.url)
    assert "another program" not in str(caught.value)
    assert not impostor.got_the_key()


async def test_a_replayed_old_signature_does_not_prove_it(
    tmp_path: Path, impostor: Impostor
) -> None:
    """The impostor kept the real registry's answer to an earlier (fixed) nonce."""
    home, key = home_of(tmp_path, impostor.url)
    old = IdentityProver(key, [impostor.url]).answer(impostor.url, b64(b"\x00" * 32))
    assert isinstance(old, dict)
    impostor.identity = old
    with pytest.raises(InvalidCredential, match="does not verify"):
        await seed_call(home, impostor.url)
    assert not impostor.got_the_key()


async def test_a_record_without_a_key_asks_the_home_registry_key(
    tmp_path: Path, impostor: Impostor
) -> None:
    """A record written before registries recorded their key: the proof is asked for with
    the public half of the home's ``registry.key``."""
    home, _ = home_of(tmp_path, impostor.url)
    (home / ADMIN_KEY_REGISTRY_FILE).write_text(impostor.url + "\n")
    with pytest.raises(InvalidCredential, match="HTTP 404"):
        await seed_call(home, impostor.url)
    assert not impostor.got_the_key()
    (home / "registry.key").unlink()  # nothing to check a proof with: the key goes nowhere
    with pytest.raises(InvalidCredential, match="LLM_MESH_ADMIN_KEY"):
        await seed_call(home, impostor.url)
    assert not impostor.got_the_key()


async def test_an_explicit_admin_key_is_the_users_choice(
    tmp_path: Path, impostor: Impostor
) -> None:
    home, _ = home_of(tmp_path, impostor.url)
    settings = Settings(home=home, admin_key="explicit-admin-key")
    reg = DistributedModelRegistry(settings, registry_url=impostor.url)
    assert await reg.health_check_all_hosts() == []
    sent = [h.get("Authorization") for _, p, h in impostor.seen if p == "/mesh/health-check"]
    assert sent == ["Bearer explicit-admin-key"]


# --- the real registry proves it; another home's does not -------------------------------


class Seeing(httpx.AsyncBaseTransport):
    """The test's way into the in-process mesh, noting each request's path and credential."""

    def __init__(self, mesh: InProcessMesh) -> None:
        self.inner = _Bridge(mesh)
        self.seen: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, request.headers.get("authorization")))
        return await self.inner.handle_async_request(request)


async def test_the_real_registry_proves_it_and_the_admin_call_works(
    inprocess_mesh: InProcessMesh,
) -> None:
    home = inprocess_mesh.settings.home
    recorded = (home / ADMIN_KEY_REGISTRY_FILE).read_text().split()
    assert recorded[0] == REGISTRY_URL and recorded[1].startswith("key=")
    seeing = Seeing(inprocess_mesh)
    async with httpx.AsyncClient(transport=seeing) as http:
        for _ in range(2):
            assert await seed_call(home, REGISTRY_URL, http) == []
    admin_key = (home / "admin.key").read_text().strip()
    checks = [auth for path, auth in seeing.seen if path == "/mesh/health-check"]
    assert checks == [f"Bearer {admin_key}"] * 2
    proofs = [auth for path, auth in seeing.seen if path == IDENTITY_PATH]
    assert proofs == [None, None]  # asked before each admin call; never with the key


class Taken(httpx.AsyncBaseTransport):
    """The recorded URL: the in-process registry until ``stopped``; then a program that took
    its port, answering 404 to ``GET /mesh/identity`` and 200 to all else, noting each
    request's credential."""

    def __init__(self, mesh: InProcessMesh) -> None:
        self.registry = _Bridge(mesh)
        self.stopped = False
        self.impostor_saw: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.stopped:
            return await self.registry.handle_async_request(request)
        self.impostor_saw.append(request.headers.get("authorization"))
        if request.url.path == IDENTITY_PATH:
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"results": [], "models": [], "nodes": []})


async def test_a_port_taken_right_after_a_proof_gets_no_key(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-03 (review): a proof was kept 30 s per (URL, key) in the process, so
    a program that took the port within 30 s of the registry's stop was sent the key by the
    next admin call without being asked anything. Each admin call is proven afresh."""
    home = inprocess_mesh.settings.home
    taken = Taken(inprocess_mesh)
    async with httpx.AsyncClient(transport=taken) as http:
        assert await seed_call(home, REGISTRY_URL, http) == []  # proven: the real registry
        taken.stopped = True  # the mesh stops; a local program binds its port at once
        with pytest.raises(InvalidCredential, match="did not prove"):
            await seed_call(home, REGISTRY_URL, http)
    assert taken.impostor_saw == [None]  # asked to prove it, never sent the key


async def test_a_registry_of_another_home_does_not_prove_it(
    inprocess_mesh: InProcessMesh, tmp_path: Path
) -> None:
    home, _ = home_of(tmp_path, REGISTRY_URL, name="other-home")
    seeing = Seeing(inprocess_mesh)
    async with httpx.AsyncClient(transport=seeing) as http:
        with pytest.raises(InvalidCredential, match="another registry key"):
            await seed_call(home, REGISTRY_URL, http)
    assert [path for path, _ in seeing.seen] == [IDENTITY_PATH]
    assert all(auth is None for _, auth in seeing.seen)


async def test_the_registry_signs_only_for_its_own_urls(inprocess_mesh: InProcessMesh) -> None:
    async with inprocess_mesh.client() as http:
        q = {"origin": "http://127.0.0.1:9000", "nonce": b64(b"\x01" * 32)}
        r = await http.get(IDENTITY_PATH, params=q)
        assert r.status_code == 400
        assert "does not serve at" in r.json()["error"]["message"]
        r = await http.get(IDENTITY_PATH, params={**q, "origin": REGISTRY_URL, "nonce": "x"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "nonce"


async def test_identity_proofs_are_rate_limited_per_address(
    inprocess_mesh: InProcessMesh,
) -> None:
    q = {"origin": REGISTRY_URL, "nonce": b64(b"\x01" * 32)}
    async with inprocess_mesh.client() as http:
        codes = [(await http.get(IDENTITY_PATH, params=q)).status_code for _ in range(140)]
    assert codes[:120] == [200] * 120  # a full bucket: 120 a minute, refilled 2 a second
    assert 429 in codes[120:]


def _free_port() -> int:
    return free_port()


async def test_a_program_on_the_proxys_port_does_not_relay_the_proof_and_get_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03 (review): with ``HTTP_PROXY`` set (a local proxy, down), a program
    on the proxy's port received the proof's question, relayed it to the real registry
    (which signs: the origin is its own URL) and then received the admin key. The home's
    key now goes to its registry directly, never through an environment proxy."""
    url = f"http://127.0.0.1:{_free_port()}"  # the registry's recorded URL (down here)
    home, key = home_of(tmp_path, url)
    prover = IdentityProver(key, [url])  # what the real registry answers, relayed
    seen: list[tuple[str, dict[str, str]]] = []

    class Relay(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            seen.append((self.path, dict(self.headers.items())))
            parts = urlsplit(self.path)  # a proxy is asked for the absolute URL
            if parts.path == IDENTITY_PATH:
                q = dict(parse_qsl(parts.query))
                body: Any = prover.answer(q["origin"], q["nonce"])
            else:
                body = {"results": []}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        with pytest.raises(RegistryUnreachable):  # nothing listens at the URL itself
            await seed_call(home, url)
    finally:
        server.shutdown()
        server.server_close()
    assert not any(ADMIN_KEY in json.dumps(h) for _, h in seen)
    assert seen == []  # the proxy is not used for the home's registry at all


async def test_strangers_exhausting_the_total_do_not_lock_the_local_operator_out(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03 (review): the per-process total (6,000 a minute) was shared by every
    address, so strangers at 50 addresses kept it empty and the operator's own admin calls
    on this machine were refused their proof (429). A loopback client is not counted in the
    total; strangers still are."""
    from LLM_Mesh.registry import api_views

    monkeypatch.setattr(api_views, "IDENTITY_TOTAL_PER_MIN", 4)
    assert inprocess_mesh.app is not None
    q = {"origin": REGISTRY_URL, "nonce": b64(b"\x01" * 32)}
    codes = []
    for i in range(6):  # six strangers, one request each: the total of 4 is spent
        transport = httpx.ASGITransport(app=inprocess_mesh.app, client=(f"198.51.100.{i}", 1))
        async with httpx.AsyncClient(transport=transport, base_url=REGISTRY_URL) as http:
            codes.append((await http.get(IDENTITY_PATH, params=q)).status_code)
    assert codes == [200] * 4 + [429] * 2
    seeing = Seeing(inprocess_mesh)  # the operator, on this machine (loopback)
    async with httpx.AsyncClient(transport=seeing) as http:
        assert await seed_call(inprocess_mesh.settings.home, REGISTRY_URL, http) == []
