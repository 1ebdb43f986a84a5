"""What a node does when a registry revoked it: the decision, no I/O.

A registry's admin revokes a node (``llm-mesh registry nodes revoke NODE_ID``) or its
operator (``registry operators revoke NAME``: every node of it); from then on that registry
answers the node's registration and heartbeats 403 with the error code ``revoked``
(:func:`is_revoked`), signed with its registry key over the refused message
(``core/revocation_proof.py``: the agent honours no other once it holds that key). Sending a heartbeat every few seconds into that refusal helps no one,
so the node (``node/agent.py``):

- logs one ERROR in words (:func:`revoked_message`: which registry, what it said, that it
  routes nothing here, what to do), not an HTTP 403 line per heartbeat; once more when a
  re-check hears that its operator was revoked (:meth:`RevokedRegistries.heard`);
- stops heartbeating to that registry, and asks it again with one registration after
  ``FIRST_CHECK_S`` (1 min), then after twice the last wait, at most ``MAX_CHECK_S``
  (15 min) (:func:`check_delay`): a mistake undone at the registry is seen within 15 min;
- keeps (or moves) its heartbeats to its other registries, if it has several: each one's
  revocation is that registry's decision (replicas that share a store say the same);
- says its goodbye on shutdown only to registries that did not revoke it.

:class:`RevokedRegistries` keeps, per registry URL, since when, what it said and when to
ask again; time is the caller's clock (``time.monotonic`` in the node).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIRST_CHECK_S",
    "MAX_CHECK_S",
    "TOKEN_REFUSED_EXIT",
    "Revocation",
    "RevokedRegistries",
    "by_operator",
    "check_delay",
    "is_plain_http_refused",
    "is_revoked",
    "is_token_refused",
    "plain_http_waits",
    "revoked_message",
]

FIRST_CHECK_S = 60.0  # the first re-check, after the revocation was heard
MAX_CHECK_S = 900.0  # the longest wait between two re-checks (15 min)


def check_delay(checks: int) -> float:
    """The wait before re-check number ``checks + 1``: 60, 120, 240, 480, 900, 900, ... s."""
    return min(MAX_CHECK_S, FIRST_CHECK_S * 2.0 ** min(max(checks, 0), 16))


def is_plain_http_refused(status: int, answer: Any) -> bool:
    """A 403 ``plain_http_remote`` (the node's http:// URL, off the registry's machine): as
    long-lived as a revocation until someone acts, so the node waits :func:`check_delay`."""
    error = answer.get("error") if status == 403 and isinstance(answer, dict) else None
    return isinstance(error, dict) and error.get("reason") == "plain_http_remote"


def plain_http_waits(count: int, plain: bool, recheck: bool) -> tuple[int, float | None]:
    """After a refused registration: the count of 403 ``plain_http_remote`` in a row (one
    more for that refusal, back to 0 for another) and the wait it sets before the next
    registration (:func:`check_delay`; ``None``: the caller's own). A re-check (one
    registration to a registry that revoked the node, on that registry's own schedule:
    :class:`RevokedRegistries`, the same waits) changes neither: its answer is not the other
    registries' (found 2026-12-04, review: each re-check reset the count, so a node refused
    for plain http by its other registry asked it every 1-2 min)."""
    if recheck:
        return count, None
    return (count + 1, check_delay(count)) if plain else (0, None)


def is_revoked(status: int, answer: Any) -> bool:
    """Whether a registry's answer (its status and parsed JSON body) says "revoked": a 403
    whose OpenAI-shaped error has the code (or reason) ``revoked``."""
    if status != 403 or not isinstance(answer, dict):
        return False
    error = answer.get("error")
    if not isinstance(error, dict):
        return False
    return "revoked" in (error.get("code"), error.get("reason"))


def is_token_refused(status: int, answer: Any) -> bool:
    """A registration's 401 ``invalid_credential``: the registry does not know the operator
    token (or got none), and no retry makes it known: the node stops, exit
    :data:`TOKEN_REFUSED_EXIT` (found 2026-12-05, polish32: it asked again for ever)."""
    error = answer.get("error") if status == 401 and isinstance(answer, dict) else None
    return isinstance(error, dict) and error.get("code") == "invalid_credential"


# ``node start``'s exit status then: EX_CONFIG, which the setup script's systemd unit names
# in ``RestartPreventExitStatus=`` (``Restart=on-failure`` would start it again every 10 s)
TOKEN_REFUSED_EXIT = 78


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def by_operator(said: str) -> bool:
    """Whether the registry's message says the operator was revoked ("operator NAME is
    revoked": all of its nodes), not this node alone."""
    return said.startswith("operator ")


def revoked_message(url: str, node_id: str, said: str, others: Iterable[str] = ()) -> str:
    """The one ERROR line for registry ``url`` revoking node ``node_id``; ``said`` is the
    registry's own message (printable, short), ``others`` the registries still asked."""
    if by_operator(said):  # "operator NAME is revoked": all of its nodes
        who = f"this node's operator ({said})"
        fix = (  # a key it never registered is not revoked (found 2026-12-07, newuser41)
            "ask that registry's admin (who revoked it: `llm-mesh registry operators revoke`); "
            "to join again the node needs a new operator token "
            "from them (operator_token in node.toml), and a new identity (`llm-mesh node keys "
            "init` in a new home) only if this key registered under the revoked operator "
            "before (revoked with it; a key stays with the operator that first registered it)"
        )
    else:
        who = f"this node ({node_id})"
        fix = (
            "ask that registry's admin (who revoked it: `llm-mesh registry nodes revoke`); a "
            "revoked key stays revoked, so to join again the node needs a new identity (`llm-mesh node keys init` in a new home)"
        )
    rest = list(others)
    where = (
        f"heartbeats now go to {', '.join(rest)} only"
        if rest
        else "this node is now registered with no registry"
    )
    return (
        f"the registry at {url} revoked {who}: it routes no requests here, credits nothing "
        f"and refuses this node's messages; {fix}. Heartbeats to it stopped ({where}); the "
        f"node asks it again once in {_minutes(FIRST_CHECK_S)}, then at doubling waits up to "
        f"{_minutes(MAX_CHECK_S)}"
    )


@dataclass
class Revocation:
    """One registry's revocation as heard: what it said, since when, the re-checks made
    and when the next one is due (on the caller's clock)."""

    said: str
    since: float
    next_check: float
    checks: int = 0


class RevokedRegistries:
    """The registries that revoked this node, each with its re-check schedule."""

    def __init__(self) -> None:
        self._by_url: dict[str, Revocation] = {}

    def __contains__(self, url: object) -> bool:
        return url in self._by_url

    def __len__(self) -> int:
        return len(self._by_url)

    def get(self, url: str) -> Revocation | None:
        return self._by_url.get(url)

    def heard(self, url: str, said: str, now: float) -> bool:
        """Registry ``url`` answered "revoked" at ``now``. True when it is news (log the
        error; the first re-check is due ``FIRST_CHECK_S`` later); False when it was known
        (a re-check's answer: :meth:`checked` sets the next one), unless it now says the
        operator was revoked where it said the node: also news, as the fix differs (a new
        operator token), the schedule kept. An operator's revocation revokes each of its
        nodes' keys, so a running node's heartbeat hears "node ID is revoked" and only the
        re-check's registration names the operator (found 2026-12-04, review: the one ERROR
        told the operator to make a new identity, which the revoked operator's token cannot
        register)."""
        known = self._by_url.get(url)
        if known is None:
            self._by_url[url] = Revocation(said=said, since=now, next_check=now + FIRST_CHECK_S)
            return True
        news = by_operator(said) and not by_operator(known.said)
        known.said = said
        return news

    def checked(self, url: str, now: float) -> None:
        """A re-check of ``url`` at ``now`` that did not register the node (revoked still,
        or no answer): the next one after the doubled wait."""
        known = self._by_url.get(url)
        if known is not None:
            known.checks += 1
            known.next_check = now + check_delay(known.checks)

    def lifted(self, url: str) -> Revocation | None:
        """Registry ``url`` accepted the node again: forget its revocation (returned)."""
        return self._by_url.pop(url, None)

    def due(self, now: float) -> list[str]:
        """The registries whose re-check is due at ``now``, the earliest first."""
        ready = [(r.next_check, u) for u, r in self._by_url.items() if r.next_check <= now]
        return [u for _, u in sorted(ready)]

    def next_check(self) -> float | None:
        """When the earliest re-check is due (``None``: no registry revoked the node)."""
        return min((r.next_check for r in self._by_url.values()), default=None)

    def allowed(self, urls: Iterable[str]) -> list[str]:
        """``urls`` without the registries that revoked the node, in their order."""
        return [u for u in urls if u not in self._by_url]

    def among(self, urls: Iterable[str]) -> list[str]:
        """The registries of ``urls`` that revoked the node, in their order."""
        return [u for u in urls if u in self._by_url]
