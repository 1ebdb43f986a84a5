"""Beat tokens: a secret the registry hands a node with each verified message's answer.

Past the counts of forged heartbeats and goodbyes (``admin.CredentialTries.before_verify``,
trust37), a known node's message used to be verified only from its home address, at most
``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing a minute per id: a stranger sharing the
node's address (its NAT, its /64) could spend those and make the node's beats 429 for up to
a minute, again and again. The registry now answers each verified registration and
heartbeat with a fresh token (``beat_token``; over TLS in production) and the node sends
the last one back (``X-Mesh-Beat-Token``) with its next heartbeat or goodbye. Past the
counts:

- a message carrying a token for its node that holds (:mod:`LLM_Mesh.core.beat_mac`: an
  HMAC of the node id and an expiry under a key derived from ``registry.key``, checked
  in constant time) is verified, still at most ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN``
  failing a minute per id (the bound on verifies unchanged: the token only chooses which
  messages may use them);
- once the node said so in its registration here (``NodeRegistration.beat_tokens``,
  signed) or has sent a token that holds here (:meth:`BeatTokens.sends`), any other
  message for it (no token, a wrong or expired one) is 404 ``unknown_node`` ("register
  again"), nothing verified nor counted, from its home address too: a stranger there no
  longer spends the node's allowance;
- a node that never sent one here (an older node) keeps the address rule (home: verified
  within the allowance; elsewhere: 404).

A node sends its token with a registration too: past its address's counts and its id's
count of refused re-registrations (or every id's total of them), one carrying a token that
holds for its id is still verified, under a count of its own
(``admin.CredentialTries.before_reregister``, regtoken40).

Before the counts are full nothing changes: no token is needed. A token holds at every
replica and ``--workers`` worker of the registry (they share ``registry.key``) until
:data:`TOKEN_LIFETIME_HEARTBEATS` heartbeat expiries after it was made (beatkey39; before,
each process's tokens were random and its own, so a node whose beats reached another
replica was told to register again); mid-rotation a replica given ``registry.key.previous``
takes the previous key's tokens too, for ``previous_key_window_s`` after the rotation
began there (rot41: then no longer, said once; none where that start cannot be kept, rot42), and makes its own under the new key
(``core/beat_mac.py``, beatrot40). What is kept per process is only which nodes send
tokens back: one entry per node id, written only after a message verified (or a
registration was accepted) and dropped when the node is forgotten (``node_forget.py``),
as ``admin.NodeHomes``. Until the registry key is known (:meth:`BeatTokens.use`, at
start) the key is random, this process's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from LLM_Mesh.core.beat_mac import BeatMac

__all__ = ["TOKEN_LIFETIME_HEARTBEATS", "BeatTokens"]

log = logging.getLogger(__name__)

# a token holds for this many heartbeat expiries (``Settings.heartbeat_expiry_s``, 30 s by
# default): a node beats every interval with a fresh one, so this spans lost answers and
# a few seconds of clock difference between replicas
TOKEN_LIFETIME_HEARTBEATS = 2
_DEFAULT_LIFETIME_S = 60.0


class BeatTokens:
    """The registry's beat tokens and the nodes known here to send them (module docstring)."""

    __slots__ = ("_mac", "_previous_told", "_sends", "_wall_clock", "lifetime_s")

    def __init__(
        self,
        mac: BeatMac | None = None,
        wall_clock: Callable[[], float] = time.time,
        lifetime_s: float = _DEFAULT_LIFETIME_S,
    ) -> None:
        self._mac = mac if mac is not None else BeatMac.random()
        self._wall_clock = wall_clock
        self.lifetime_s = lifetime_s
        self._sends: dict[str, bool] = {}
        self._previous_told = False  # the previous key's window over, said once

    def use(self, mac: BeatMac, wall_clock: Callable[[], float], heartbeat_expiry_s: float) -> None:
        """Make and take tokens under ``mac`` (the registry key's: every replica's) from now
        on, good for :data:`TOKEN_LIFETIME_HEARTBEATS` heartbeat expiries."""
        self._mac = mac
        self._wall_clock = wall_clock
        self.lifetime_s = TOKEN_LIFETIME_HEARTBEATS * heartbeat_expiry_s
        # already over at start: said there (app_keys.py)
        self._previous_told = mac.has_previous and wall_clock() >= mac.previous_until

    def issue(self, node_id: str, sends: bool | None = None) -> str:
        """A fresh token for ``node_id``'s verified message's answer. ``sends``: an accepted
        registration's signed word (``NodeRegistration.beat_tokens``) that the node sends
        tokens back, or not (an older node; a downgrade), from now on."""
        if sends is not None:
            self._sends[node_id] = sends
        return self._mac.make(node_id, self._wall_clock() + self.lifetime_s)

    def matches(self, node_id: str, token: str | None) -> bool:
        """``token`` holds for ``node_id`` now (made by any replica of this registry, not
        expired); a match marks the node as one that sends tokens (only a holder of one
        can)."""
        now = self._wall_clock()
        if not self._previous_told and self._mac.has_previous and now >= self._mac.previous_until:
            self._previous_told = True
            log.warning(
                "beat tokens made under registry.key.previous are no longer taken (its window "
                "after the rotation is over: LLM_MESH_PREVIOUS_KEY_WINDOW_S); it still "
                "signs the rotation statement, and may be removed once every replica started"
            )
        if not self._mac.holds(node_id, token, now):
            return False
        self._sends[node_id] = True
        return True

    def sends(self, node_id: str) -> bool:
        """``node_id`` said or showed it sends tokens back: without one it is a stranger."""
        return self._sends.get(node_id, False)

    def forget(self, node_id: str) -> None:
        self._sends.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._sends)
