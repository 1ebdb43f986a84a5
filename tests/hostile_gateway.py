"""A gateway on a real socket (a thread) that answers as a hostile one may: under
``/drip/`` a listing a byte each 0.05 s, under ``/bomb/`` a gzip bomb, under ``/evil/`` a
500 whose error message carries terminal escapes and Rich markup (:data:`EVIL`)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from LLM_Mesh.client import MAX_ANSWER_BYTES

# 1214 bytes, one each 0.05 s: 61 s, far past any bound a test asserts on a loaded box (it was
# 11 s, and bounds of 5-8 s failed at load 15-18: flaky36, flaky37)
DRIP = b'{"models": []' + b" " * 1200 + b"}"
EVIL = "x\x1b[2J\x1b]0;owned\x07\x9b31m[link=http://evil.test]OK[/link]"
BOMB = gzip.compress(b'{"models": [], "pad": "' + b" " * (MAX_ANSWER_BYTES + (1 << 20)) + b'"}', 9)


class _Gateway(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/evil"):
            self._evil()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/bomb"):
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(BOMB)))
            self.end_headers()
            self.wfile.write(BOMB)
            return
        self.send_header("Content-Length", str(len(DRIP)))
        self.end_headers()
        for i in range(len(DRIP)):
            try:
                self.wfile.write(DRIP[i : i + 1])
                self.wfile.flush()
            except OSError:  # the reader gave up
                return
            time.sleep(0.05)

    def _evil(self) -> None:
        body = EVIL.encode()  # not JSON: quoted as sent
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
