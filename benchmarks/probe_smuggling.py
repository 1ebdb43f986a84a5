"""Classic request-smuggling framings sent to a server (docs/security.md, trust36): each followed,
on the same connection, by ``GET /mesh/nodes``; prints every status line that came back.

Tried 2026-12-06 through nginx 1.22.1 (Debian bookworm ``nginx-light``) in front of
``llm-mesh registry serve --port 18836``, with this server block (``proxy_http_version 1.1``,
an upstream ``keepalive 8``, ``proxy_set_header Connection ""``,
``proxy_set_header X-Forwarded-For $remote_addr``) on 127.0.0.1:18837, and against the registry
directly. Two requests answered where two were sent, or one refusal and the connection closed:
no desync; a smuggled request would show as a third answer, or the follow-up's answer
changed (the smuggled prefix ``G`` makes it ``GGET``).

    python3 benchmarks/probe_smuggling.py PORT [HOST]
"""

from __future__ import annotations

import re
import socket
import sys
import time

FOLLOW = b"GET /mesh/nodes HTTP/1.1\r\nHost: r\r\n\r\n"
SMUG = b"GET /mesh/usage-audit HTTP/1.1\r\nHost: r\r\nX: "
HEAD = b"POST /mesh/nodes HTTP/1.1\r\nHost: r\r\n"
CASES = {
    "CL.TE": HEAD + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": HEAD
    + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
    % (len(SMUG), SMUG),
    "TE obfuscated (xchunked)": HEAD
    + b"Content-Length: 6\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nG",
    "TE space before colon": HEAD
    + b"Content-Length: 6\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nG",
    "TE chunked, identity": HEAD
    + b"Content-Length: 6\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nG",
    "TE twice (chunked / x)": HEAD
    + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\nG",
    "TE tab": HEAD + b"Content-Length: 6\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\nG",
    "TE only, chunk line ;ext and bare LF": HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n1;x\nG\r\n0\r\n\r\n",
    "two Content-Length": HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nGG",
    "Content-Length list 1, 2": HEAD + b"Content-Length: 1, 2\r\n\r\nGG",
    "Content-Length +1": HEAD + b"Content-Length: +1\r\n\r\nG",
    "chunk size overflow": HEAD
    + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nG\r\n0\r\n\r\n",
}


def answers(host: str, port: int, raw: bytes) -> list[str]:
    s = socket.create_connection((host, port))
    s.settimeout(3)
    s.sendall(raw)
    time.sleep(0.3)
    s.sendall(FOLLOW)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    s.close()
    return [m.decode() for m in re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+", data)]


def main() -> None:
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    for name, raw in CASES.items():
        print(f"{name:40s} -> {answers(host, port, raw)}")


if __name__ == "__main__":
    main()
