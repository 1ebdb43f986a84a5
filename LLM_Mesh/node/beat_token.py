"""The registry's beat token, kept by the node (the registry's side: registry/beat_tokens.py).

Each verified registration and heartbeat is answered with a fresh ``beat_token``; the node
keeps the last one of each registry URL and sends it back (``X-Mesh-Beat-Token``) with its
next heartbeat, goodbye or registration there. While a registry is flooded with forged
heartbeats for this node's id, a message with it is still verified, whoever shares the
node's address (beattoken38); past a count of refused re-registrations of this node's key
that a stranger spent, a registration with it is still verified (regtoken40; before,
registrations carried none). A registry that answers none (an older one) is sent none; an
answer's token of another form (not 16 to 64 base64url characters) is not kept: it could
not be sent as a header.
"""

from __future__ import annotations

import re
from typing import Any

from LLM_Mesh.core.identity import HDR_BEAT_TOKEN, MessageKind

__all__ = ["BeatToken"]

_FORM = re.compile(r"[A-Za-z0-9_-]{16,64}")


class BeatToken:
    """The last beat token each registry URL answered."""

    __slots__ = ("_of",)

    def __init__(self) -> None:
        self._of: dict[str, str] = {}

    def get(self, registry: str) -> str | None:
        return self._of.get(registry)

    def header(self, registry: str, kind: MessageKind) -> dict[str, str]:
        """The header for a message of ``kind`` to ``registry`` (a registration's too:
        regtoken40; before, none)."""
        token = self._of.get(registry)
        return {} if token is None else {HDR_BEAT_TOKEN: token}

    def heard(self, registry: str, answer: Any) -> None:
        """A 200's answer from ``registry``: its ``beat_token`` kept, if it has one."""
        token = answer.get("beat_token") if isinstance(answer, dict) else None
        if isinstance(token, str) and _FORM.fullmatch(token):
            self._of[registry] = token
