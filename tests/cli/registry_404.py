"""A registry stand-in for the CLI tests: a stdlib server on loopback, over http or https
(a self-signed certificate), that answers every GET and POST 404 in the registry's error
shape (or the answer it is given, or the JSON given for its path: a gateway's
``/mesh/models``, ...) and records what it was asked. A command that reads "answered 404" got past the
connection (and the TLS handshake); one that asked nothing did not."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from LLM_Mesh.node.tls import make_self_signed

__all__ = ["serve_http", "serve_https"]

#: what each request was: (method, path, body size in bytes)
Seen = list[tuple[str, str, int]]

NOT_FOUND = b'{"error": {"message": "no", "type": "not_found", "code": "not_found"}}'

#: one answer to every request (a status and a body), or a JSON value by path (200; any
#: other path 404)
Answer = tuple[int, bytes] | Mapping[str, object]


class _Recorder(ThreadingHTTPServer):
    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _NotFound)
        self.paths: list[str] = []
        self.seen: Seen = []
        self.answer = answer


class _NotFound(BaseHTTPRequestHandler):
    server: _Recorder

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        self.server.paths.append(self.path)
        self.server.seen.append((self.command, self.path, size))
        answer = self.server.answer
        if isinstance(answer, Mapping):
            path = self.path.split("?")[0]
            found = path in answer
            answer = (200, json.dumps(answer[path]).encode()) if found else (404, NOT_FOUND)
        status, body = answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(
    tls: ssl.SSLContext | None = None, answer: Answer = (404, NOT_FOUND)
) -> Iterator[_Recorder]:
    server = _Recorder(answer)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_http(
    answer: Answer = (404, NOT_FOUND),
) -> Iterator[tuple[str, list[str], Seen]]:
    """An http server answering 404 (or ``answer``: a status and a body, or a JSON value by
    path): its URL, the paths asked, each request (method, path, size)."""
    with _serving(answer=answer) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.paths, server.seen


@contextlib.contextmanager
def serve_https(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A self-signed https server answering 404 (its certificate and key written in
    ``tmp_path``): its URL, its certificate, the paths asked."""
    cert, key = tmp_path / "reg.crt", tmp_path / "reg.key"
    make_self_signed(cert, key, ["127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with _serving(ctx) as server:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, server.paths
