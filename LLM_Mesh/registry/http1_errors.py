"""The errors of the gateway's HTTP/1.1 client (:mod:`~LLM_Mesh.registry.http1`) and of its
streamed answers (:mod:`~LLM_Mesh.registry.http1_stream`); ``node_client.py`` maps them to
its own tree."""

from __future__ import annotations

__all__ = ["Http1ConnectError", "Http1Error", "Http1Timeout"]


class Http1Error(Exception):
    """The connection broke, or the answer is not valid HTTP/1.1 (``kind`` names it)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Http1ConnectError(Http1Error):
    """No connection (refused, unreachable, connect timeout): nothing was sent."""


class Http1Timeout(Http1Error):
    """No complete answer within the read timeout."""
