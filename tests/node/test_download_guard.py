"""A model download cannot be pointed at the node's own machine or network (node/download_guard.py).

The attacks: a catalog entry, a URL or any redirect of it naming (or resolving to) a
loopback, private, link-local (cloud metadata), multicast or reserved address, and a
name that resolves to a public address when checked and to a private one when used.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.node.download_guard import DownloadRefused, GuardedBackend, guarded_client
from LLM_Mesh.node.downloads import download_model, part_path
from tests.fake_network import FakeNetwork

DATA = fake_gguf(3, tensors=1, kvs=2, payload=os.urandom(4096))
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server: Any = self.server
        server.hits.append(self.path)
        target = server.redirects.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()
        self.wfile.write(DATA)


class Site:
    def __init__(self, httpd: Any) -> None:
        self.httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self.port: int = httpd.server_address[1]

    @property
    def hits(self) -> list[str]:
        return list(self.httpd.hits)

    def redirect(self, path: str, target: str) -> None:
        self.httpd.redirects[path] = target


@pytest.fixture
def sites() -> Iterator[list[Site]]:
    """Two loopback HTTP servers: each serves DATA, or the redirects it is given."""
    started: list[tuple[Any, threading.Thread]] = []
    for _ in range(2):
        httpd: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.hits, httpd.redirects = [], {}
        t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        t.start()
        started.append((httpd, t))
    try:
        yield [Site(h) for h, _ in started]
    finally:
        for httpd, t in started:
            httpd.shutdown()
            httpd.server_close()
            t.join(5)


async def test_a_download_from_a_loopback_url_is_refused_unless_allowed(
    sites: list[Site], tmp_path: Path
) -> None:
    (site, _) = sites
    dest = tmp_path / "m.gguf"
    async with guarded_client(timeout=10) as client:
        with pytest.raises(DownloadRefused, match="loopback"):
            await download_model(site.url + "/m.gguf", dest, sha256=SHA, client=client)
    assert site.hits == [] and not dest.exists() and not part_path(dest).exists()
    # the operator's explicit allowance of that origin (node models add --allow-private-url)
    async with guarded_client(timeout=10, allow_origins=[("127.0.0.1", site.port)]) as client:
        got = await download_model(site.url + "/m.gguf", dest, sha256=SHA, client=client)
    assert got.read_bytes() == DATA and site.hits == ["/m.gguf"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam",  # cloud metadata (link-local)
        "http://10.0.0.5/m.gguf",  # the LAN
        "http://[::ffff:127.0.0.1]:{port}/m.gguf",  # loopback, IPv4-mapped
        "http://2130706433:{port}/m.gguf",  # 127.0.0.1, decimal
        "http://224.0.0.1/m.gguf",  # multicast
        "http://240.0.0.1/m.gguf",  # reserved
        "http://0.0.0.0:{port}/m.gguf",  # unspecified: this machine
        "http://127.0.0.1:{port}/m.gguf",  # another service of this machine
    ],
)
async def test_a_redirect_to_a_private_address_is_refused_before_any_connection(
    sites: list[Site], tmp_path: Path, target: str
) -> None:
    """The first hop is a mirror the operator allowed; where it redirects is judged anew."""
    mirror, victim = sites
    mirror.redirect("/m.gguf", target.format(port=victim.port))
    dest = tmp_path / "m.gguf"
    async with guarded_client(timeout=5, allow_origins=[("127.0.0.1", mirror.port)]) as client:
        with pytest.raises(DownloadRefused, match="download refused"):
            await download_model(mirror.url + "/m.gguf", dest, sha256=SHA, client=client)
    assert mirror.hits == ["/m.gguf"]
    assert victim.hits == []  # never connected to
    assert not dest.exists() and not part_path(dest).exists()


def test_a_catalog_url_on_loopback_is_not_fetched(
    sites: list[Site], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """``python -m LLM_Mesh.node.downloads`` (setup-node-operator.sh) on a catalog entry
    whose URL is this machine's: refused, nothing asked of the server."""
    from dataclasses import replace

    from LLM_Mesh.core.catalog import get_spec
    from LLM_Mesh.node import downloads

    (site, _) = sites
    base = get_spec("gemma-3-270m")
    assert base is not None
    spec = replace(base, source=None, url=site.url + "/m.gguf", sha256=SHA, size_bytes=len(DATA))
    monkeypatch.setattr(downloads, "get_spec", lambda _id: spec)
    assert downloads.main(["--models-dir", str(tmp_path), spec.id]) == 1
    assert "download refused" in capsys.readouterr().err
    assert site.hits == [] and not (tmp_path / spec.file_name).exists()


def test_node_models_add_refuses_a_private_url_without_the_flag(
    sites: list[Site], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from LLM_Mesh.cli.node_commands import node_app

    mirror, victim = sites
    home = tmp_path / "mesh"
    run = CliRunner().invoke
    r = run(
        node_app, ["models", "add", mirror.url + "/m.gguf", "--sha256", SHA, "--home", str(home)]
    )
    assert r.exit_code == 1 and "download refused" in r.output and "--allow-private-url" in r.output
    assert mirror.hits == [] and not (home / "models" / "m.gguf").exists()
    # the flag allows that URL's host and port, not where it redirects
    mirror.redirect("/r.gguf", victim.url + "/m.gguf")
    r = run(node_app, ["models", "add", mirror.url + "/r.gguf", "--sha256", SHA,
                       "--allow-private-url", "--home", str(home)])  # fmt: skip
    assert r.exit_code == 1 and "download refused" in r.output, r.output
    assert victim.hits == []
    r = run(node_app, ["models", "add", mirror.url + "/m.gguf", "--sha256", SHA,
                       "--allow-private-url", "--home", str(home)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (home / "models" / "m.gguf").read_bytes() == DATA


async def test_a_name_resolving_to_a_private_address_is_refused(tmp_path: Path) -> None:
    for answer in (["10.20.30.40"], ["93.184.216.34", "127.0.0.1"], ["fd00:ec2::254"]):
        backend = FakeNetwork()
        guard = GuardedBackend(resolver=_answers(answer), inner=backend)
        with pytest.raises(DownloadRefused):
            await guard.connect_tcp("mirror.example", 443)
        assert backend.hosts == []  # one private answer among public ones is enough


async def test_the_checked_address_is_the_one_connected_to_dns_rebinding() -> None:
    """The name answers a global address when checked and loopback after: the connection
    goes to the checked literal, the name is resolved once per connection."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls) - 1, 1)]

    backend = FakeNetwork(peer="93.184.216.34")
    guard = GuardedBackend(resolver=resolver, inner=backend)
    await guard.connect_tcp("mirror.example", 443)
    assert backend.hosts == ["93.184.216.34"] and calls == ["mirror.example"]


async def test_the_address_actually_connected_to_is_judged_again() -> None:
    backend = FakeNetwork(peer="10.0.0.7")  # a network stack that connected elsewhere
    guard = GuardedBackend(resolver=_answers(["93.184.216.34"]), inner=backend)
    with pytest.raises(DownloadRefused, match="private"):
        await guard.connect_tcp("mirror.example", 443)
    assert backend.closed == 1


async def test_allowing_loopback_lets_loopback_through_and_nothing_else() -> None:
    for answer, ok in ((["127.0.0.1"], True), (["::1"], True), (["10.0.0.1"], False),
                       (["169.254.169.254"], False), (["::ffff:127.0.0.1"], False)):  # fmt: skip
        backend = FakeNetwork(peer=answer[0])
        guard = GuardedBackend(allow=("loopback",), resolver=_answers(answer), inner=backend)
        if ok:
            await guard.connect_tcp("files.test", 80)
        else:
            with pytest.raises(DownloadRefused):
                await guard.connect_tcp("files.test", 80)


def _answers(addrs: list[str]) -> Any:
    async def resolver(host: str, port: int) -> list[str]:
        return addrs

    return resolver
