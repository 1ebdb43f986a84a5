"""A free port for a server a test starts later, drawn where no outgoing connection takes it."""

from __future__ import annotations

import random
import socket

_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, for a process this test starts later: drawn below the
    kernel's ephemeral range, so that no outgoing connection of any process takes it in
    between (found 2026-12-04, CI: a port bound and closed at 0 was an ephemeral one, and a
    client's connection took it before the node bound it: "address already in use"); not
    one handed out before in this process."""
    low = _ephemeral_low()
    if low > 20_000:
        for _ in range(200):
            port = random.randrange(15_000, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
