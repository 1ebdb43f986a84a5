"""The node agent's wire helpers: its registration backoff, what a failed call was, how a
registry's answer and refusal are read (a 403 ``revoked`` the registry's key signed, or not),
the exact bytes it sends (``node/agent.py``)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from LLM_Mesh.core.check_state import CheckState, show_time, told, turned
from LLM_Mesh.core.identity import MessageKind, hash_secret
from LLM_Mesh.core.revocation_proof import TrustedKey, check_revocation, revoked_request
from LLM_Mesh.core.revoked_notice import is_revoked, is_token_refused
from LLM_Mesh.logs import log_text as said

__all__ = [
    "Backoff",
    "Unreached",
    "answer_of",
    "check_clock",
    "error_message",
    "heard_health",
    "refusal",
    "registration_body",
    "revocation_doubt",
    "token_doubt",
    "wire_json",
]

log = logging.getLogger("LLM_Mesh.node.agent")  # the agent's lines


@dataclass
class Backoff:
    """Capped exponential delays: ``initial``, ×``factor`` each failure, at most ``cap``."""

    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 60.0
    failures: int = 0

    def peek(self) -> float:
        """The delay :meth:`next_delay` returns next."""
        return min(self.cap_s, self.initial_s * self.factor**self.failures)

    def next_delay(self) -> float:
        delay = self.peek()
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class Unreached:
    """No registry answered (below 500): the last failure, and ``refused``: every registry
    tried refused the connection outright (nothing listens there: it is gone)."""

    message: str
    refused: bool = False


def refusal(r: httpx.Response, limit: int = 600) -> str:
    """What a refusal says: its OpenAI-shaped error's code and whole message (the raw
    body's first 200 characters cut a long message before its advice), else the body."""
    try:
        error = r.json().get("error")
        code, message = error.get("code"), error["message"]
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError):
        return said(r.text, 200)
    return f"{said(code, 80)}: {said(message, limit)}" if code else said(message, limit)


def answer_of(r: httpx.Response) -> Any:
    """The answer's JSON, or ``None`` (not JSON, or nested too deep to parse)."""
    try:
        return r.json()
    except (ValueError, RecursionError):
        return None


def wire_json(obj: Any) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def registration_body(reg: BaseModel, operator_token: str | None) -> bytes:
    """A registration's bytes (signed): with the SHA-256 of the operator token the node
    sends beside it, so that the token header cannot be swapped for another operator's on
    the way (the signature covers the body only; ``registry/api.py``, attack32b); and that
    it sends beat tokens back (``beat_tokens``: ``registry/beat_tokens.py``)."""
    obj = reg.model_dump(mode="json")
    obj["beat_tokens"] = True  # it sends each answer's beat token back (node/beat_token.py)
    if operator_token and operator_token.strip():  # as the registry reads the header
        obj["operator_token_sha256"] = hash_secret(operator_token.strip())
    return wire_json(obj)


def error_message(r: httpx.Response, limit: int = 300) -> str:
    """A refusal's OpenAI-shaped error message alone (printable, at most ``limit``
    characters), else the body's start."""
    answer = answer_of(r)
    error = answer.get("error") if isinstance(answer, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return said(message if isinstance(message, str) else r.text, limit)


def revocation_doubt(
    r: httpx.Response, kind: MessageKind, sent: dict[str, str], registry_key: TrustedKey | None
) -> str | None:
    """For a 403 ``revoked`` (``r``) to this node's message of ``kind`` sent with the
    headers ``sent``: why it is not the registry's word (not the signature of the registry
    key ``registry_key`` over that message, nor of a key its signed rotations lead to when
    it follows them: ``core/revocation_proof.py``), else ``None`` (its word; and any when
    the node has no key yet: ``node/agent.py``'s docstring)."""
    if registry_key is None or not is_revoked(r.status_code, answer_of(r)):
        return None
    request = revoked_request(kind, sent)
    if request is None:
        return "this node's message was not signed"
    return check_revocation(registry_key.public_key, request, answer_of(r),
                            follow_rotations=registry_key.follows_rotations)  # fmt: skip


def token_doubt(
    r: httpx.Response, sent: dict[str, str], registry_key: TrustedKey | None
) -> str | None:
    """For a registration's answer ``r`` (sent with the headers ``sent``): ``None`` when it is
    the registry's 401 refusing the operator token for good (``is_token_refused``) and signed
    by the registry key ``registry_key`` over that registration (``core/revocation_proof.py``,
    ``token=True``), or any such 401 when the node has no key yet; else what to add to the
    refusal's words: ``""`` (another refusal), or why the 401 is not the registry's word."""
    if not is_token_refused(r.status_code, answer_of(r)):
        return ""
    if registry_key is None:
        return None
    request = revoked_request(MessageKind.REGISTER, sent)
    if request is None:
        why: str | None = "this node's message was not signed"
    else:
        why = check_revocation(registry_key.public_key, request, answer_of(r),
                               follow_rotations=registry_key.follows_rotations, token=True)  # fmt: skip
    if why is None:
        return None
    return (
        " (not honoured: a 401 invalid_credential not signed by the registry's key is not "
        f"its word ({why}); registering again. If the registry does refuse the token, it "
        "runs an older version or another key than the one this node trusts)"
    )


def heard_health(
    url: str, was_failing: bool | None, answer: Any
) -> tuple[CheckState | None, bool | None]:
    """A heartbeat answer's ``health`` from the registry at ``url`` (its active checks of
    this node: ``core/check_state.py``) and whether its checks fail now (``was_failing``:
    as last said, ``None``: never said); a change is logged once. Absent (an older
    registry, no check yet) or not understood: nothing is logged."""
    state = told(answer.get("health")) if isinstance(answer, dict) else None
    change = turned(was_failing, state)
    if state is None:
        return None, was_failing
    if change == "failing":
        log.warning(
            "the registry at %s fails this node's health checks since %s (%s): it routes "
            "no requests here and credits no uptime until a check passes (it sends GET "
            "/mesh/health to this node's public URL and needs the node key's signature)",
            url,
            show_time(state.since),
            state.why or "the registry gave no reason",
        )
    elif change == "passing":
        log.info(
            "the registry at %s passes this node's health checks again (since %s)",
            url,
            show_time(state.since),
        )
    return state, not state.ok


def check_clock(wall: float, registry_time: Any, log: logging.Logger) -> None:
    """A WARNING when this machine's clock (``wall``) is over 30 s off the registry's
    answer's ``registry_time`` (beyond ±120 s every signed message is refused)."""
    if not isinstance(registry_time, (int, float)):
        return
    try:  # an int past a float's range (10**400) is no time either
        skew = wall - float(registry_time)
    except OverflowError:
        return
    if math.isfinite(skew) and abs(skew) > 30:
        log.warning(
            "this machine's clock is %+.0f s off the registry's; beyond ±120 s every "
            "message is refused: set the clock (NTP)",
            skew,
        )
