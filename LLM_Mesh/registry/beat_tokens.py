"""Beat tokens: a secret the registry hands a node with each verified message's answer.

Past the counts of forged heartbeats and goodbyes (``admin.CredentialTries.before_verify``,
trust37), a known node's message used to be verified only from its home address, at most
``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing a minute per id: a stranger sharing the
node's address (its NAT, its /64) could spend those and make the node's beats 429 for up to
a minute, again and again. The registry now answers each verified registration and
heartbeat with a fresh random token (``beat_token``; over TLS in production) and the node
sends the last one back (``X-Mesh-Beat-Token``) with its next heartbeat or goodbye. Past the
counts:

- a message carrying its node's current or previous token (a constant-time compare; the
  previous one for an answer lost on the way) is verified, still at most
  ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing a minute per id (the bound on
  verifies unchanged: the token only chooses which messages may use them);
- once the node said so in its registration here (``NodeRegistration.beat_tokens``,
  signed) or has sent a matching token here (:meth:`BeatTokens.sends`), any other
  message for it (no token, a wrong or older one) is 404 ``unknown_node`` ("register
  again"), nothing verified nor counted, from its home address too: a stranger there no
  longer spends the node's allowance;
- a node that never sent one here (an older node; or one whose token came from another
  process) keeps the address rule (home: verified within the allowance; elsewhere: 404).

Before the counts are full nothing changes: no token is needed. Tokens are each process's
(every replica and ``--workers`` worker its own), one entry per node id, written only after
a message verified (or a registration was accepted) and dropped when the node is forgotten
(``node_forget.py``), as ``admin.NodeHomes``.
"""

from __future__ import annotations

import hmac
import secrets

__all__ = ["TOKEN_BYTES", "BeatTokens"]

TOKEN_BYTES = 16  # 128 random bits, base64url: 22 characters


class _Entry:
    __slots__ = ("current", "previous", "sends")

    def __init__(self) -> None:
        self.current = ""
        self.previous = ""
        self.sends = False  # it sent back a token this process issued


def _same(sent: str, kept: str) -> bool:
    return bool(kept) and hmac.compare_digest(sent.encode(), kept.encode())


class BeatTokens:
    """This process's beat tokens, by node id (module docstring)."""

    __slots__ = ("_of",)

    def __init__(self) -> None:
        self._of: dict[str, _Entry] = {}

    def issue(self, node_id: str, sends: bool | None = None) -> str:
        """A fresh token for ``node_id``'s verified message's answer; the one before stays
        good for one more message (its answer may have been lost). ``sends``: an accepted
        registration's signed word (``NodeRegistration.beat_tokens``) that the node sends
        tokens back, or not (an older node; a downgrade), from now on."""
        entry = self._of.get(node_id)
        if entry is None:
            entry = self._of[node_id] = _Entry()
        if sends is not None:
            entry.sends = sends
        entry.previous = entry.current
        entry.current = secrets.token_urlsafe(TOKEN_BYTES)
        return entry.current

    def matches(self, node_id: str, token: str | None) -> bool:
        """``token`` is ``node_id``'s current or previous one here; a match marks the node
        as one that sends tokens (only a holder of one can)."""
        entry = self._of.get(node_id)
        if entry is None or not token or len(token) > 64:
            return False
        if _same(token, entry.current) or _same(token, entry.previous):
            entry.sends = True
            return True
        return False

    def sends(self, node_id: str) -> bool:
        """``node_id`` has sent back a token issued here: without one it is a stranger."""
        entry = self._of.get(node_id)
        return entry is not None and entry.sends

    def forget(self, node_id: str) -> None:
        self._of.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._of)
