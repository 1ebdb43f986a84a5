"""uvicorn's server as the long-running commands run it (``registry serve``, ``node start``).

:class:`SignalServer` is uvicorn's ``Server`` whose signal handler (SIGTERM, SIGINT) first
calls ``on_signal(signum)``: the node starts its shutdown budget's clock there
(``core/shutdown.py``), the registry arms its stop watchdog (``registry/stop_watchdog.py``).
:func:`port_taken` says, before anything slow starts (a model load, migrations), that
something already listens where the server would: :func:`require_free_port` raises
:class:`PortInUse`, one line the CLI prints (exit 1), with what to do.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from LLM_Mesh.errors import MeshError

__all__ = ["PortInUse", "SignalServer", "port_taken", "require_free_port"]


class PortInUse(MeshError):
    """The server's port is taken: said before anything slow starts, with what to do."""


class SignalServer(uvicorn.Server):
    """uvicorn's server, calling ``on_signal(signum)`` when a stop signal comes."""

    def __init__(
        self, config: uvicorn.Config, on_signal: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_signal is not None:
            self.on_signal(sig)
        super().handle_exit(sig, frame)


def port_taken(host: str, port: int) -> bool:
    """Something listens on ``host:port`` (bound as uvicorn binds, ``SO_REUSEADDR``); any
    other bind error (an address not on this machine) is left to uvicorn to say."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def require_free_port(host: str, port: int, what_to_do: str) -> None:
    """:class:`PortInUse` (``port N on HOST is already in use`` and ``what_to_do``) when
    :func:`port_taken`."""
    if port_taken(host, port):
        raise PortInUse(f"port {port} on {host} is already in use{what_to_do}")
