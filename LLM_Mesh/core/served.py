"""What a node served: one line of its served log, and how it finds its ledger entries.

Pure (no I/O): the node writes the lines (``node/served_log.py``), ``llm-mesh ledger
statement --operator --served FILE`` reads them back and holds them against the public
log (``core/served_check.py``).

**A line** is one JSON object (:meth:`Served.to_line`), only these fields::

    {"v": 1, "time_ms": ..., "node": "<node id>", "request_id": "req-<32 hex>",
     "model": "...", "prompt_tokens": n, "completion_tokens": n, "outcome": "ok",
     "stream": false, "continued": false, "gateway": "<registry id>",
     "gateway_ms": ..., "auth": "mac" | "signature" | "",
     "signature": "<base64url>", "body_sha256": "<hex>"}

``request_id`` is the gateway's signed ``X-Request-Id`` (always gateway-made: never the
client's own id, ARCHITECTURE.md "The node's request id"); ``outcome`` ``ok`` (the
generation finished), ``cancelled`` (its client or the gateway left first) or ``error``;
``continued``: a part continuing another node's stream (``mesh_continue``: its prompt
holds the text the part before it gave); ``gateway_ms`` the gateway's signed time. Only for a request
the gateway signed with its Ed25519 key (``auth: signature``; not its per-node MAC, which
nobody else can check) the signature and the body's SHA-256 it covers are kept: evidence
anyone holding the registry's public key can check (``core/gateway_auth.gateway_bytes``).
Never the prompt, the output or anything of them but that hash of the request's bytes.

**The ledger's id of it** (:func:`ledger_key`). Settlement writes a request's entries under
its settlement key (``registry/parse.py``): the request id itself when the gateway made
it, the node's ``req-`` id; when the client chose its id, ``c-`` + 24 hex of that id hashed,
``~``, a suffix and ``.`` + a tag. The suffix is the first 16 hex digits of the ``req-`` id
the nodes got (:func:`ledger_suffix`, since 2026-12-05; a random one before), so the node's
record finds the entry either way, and nothing of the client's id reaches the node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OUTCOMES",
    "SERVED_VERSION",
    "Served",
    "ledger_key",
    "ledger_suffix",
    "parse_line",
    "record_keys",
]

SERVED_VERSION = 1
OUTCOMES = ("ok", "cancelled", "error")
AUTHS = ("mac", "signature", "")
MAX_LINE = 4096  # bytes of one line; a longer one is not a record
_NODE_ID = re.compile(r"^req-([0-9a-f]{32})$")
_MAX_INT = 2**63 - 1
_FIELDS = (
    "v", "time_ms", "node", "request_id", "model", "prompt_tokens", "completion_tokens",
    "outcome", "stream", "continued", "gateway", "gateway_ms", "auth", "signature",
    "body_sha256",
)  # fmt: skip


def ledger_suffix(node_request_id: str) -> str:
    """The suffix of a client-chosen id's settlement key for the ``req-`` id the nodes
    got: its first 16 hex digits (64 of its 128 random bits)."""
    m = _NODE_ID.match(node_request_id)
    if m is None:
        raise ValueError("a node's request id is req- and 32 hex digits")
    return m.group(1)[:16]


def ledger_key(ledger_request_id: str) -> str:
    """What a ledger entry's ``request_id`` is matched by: ``~`` + its suffix for a
    client-chosen id's key (``c-…~suffix.tag``), else the id itself."""
    head, tilde, rest = ledger_request_id.partition("~")
    if not tilde or not head.startswith("c-"):
        return ledger_request_id
    return "~" + rest.partition(".")[0]


def record_keys(request_id: str) -> tuple[str, ...]:
    """The :func:`ledger_key` s a served request's entries may have: its id (the gateway
    made the request's id), and ``~`` + :func:`ledger_suffix` (the client chose it)."""
    m = _NODE_ID.match(request_id)
    return (request_id,) if m is None else (request_id, "~" + m.group(1)[:16])


@dataclass(frozen=True)
class Served:
    """One request the node served (see the module docstring)."""

    time_ms: int
    node: str
    request_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    outcome: str
    stream: bool = False
    continued: bool = False
    gateway: str = ""
    gateway_ms: int | None = None
    auth: str = ""
    signature: str = ""
    body_sha256: str = ""

    def __post_init__(self) -> None:
        for name in ("time_ms", "prompt_tokens", "completion_tokens"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _MAX_INT:
                raise ValueError(f"{name} is a whole number >= 0")
        if self.gateway_ms is not None and (
            type(self.gateway_ms) is not int or not 0 <= self.gateway_ms <= _MAX_INT
        ):
            raise ValueError("gateway_ms is a whole number >= 0")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome is one of {', '.join(OUTCOMES)}")
        if self.auth not in AUTHS:
            raise ValueError("auth is mac, signature or empty")
        for name in ("node", "request_id", "model", "gateway", "signature", "body_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 512:
                raise ValueError(f"{name} is a string of at most 512 characters")
        if not self.request_id:
            raise ValueError("a served request has an id")

    def to_line(self) -> str:
        """The record as one line of JSON (no newline), its fields in a fixed order."""
        values = (
            SERVED_VERSION, self.time_ms, self.node, self.request_id, self.model,
            self.prompt_tokens, self.completion_tokens, self.outcome, self.stream,
            self.continued, self.gateway, self.gateway_ms, self.auth, self.signature,
            self.body_sha256,
        )  # fmt: skip
        return json.dumps(dict(zip(_FIELDS, values, strict=True)), separators=(",", ":"))


def parse_line(line: str) -> Served:
    """A record from one line; ``ValueError`` naming why it is not one."""
    if len(line) > MAX_LINE:
        raise ValueError("longer than a record")
    try:
        data: Any = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("v") != SERVED_VERSION:
        raise ValueError(f"not a version-{SERVED_VERSION} record")
    try:
        return Served(
            time_ms=data["time_ms"], node=data["node"], request_id=data["request_id"],
            model=data["model"], prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"], outcome=data["outcome"],
            stream=bool(data.get("stream")), continued=bool(data.get("continued")),
            gateway=data.get("gateway") or "", gateway_ms=data.get("gateway_ms"),
            auth=data.get("auth") or "", signature=data.get("signature") or "",
            body_sha256=data.get("body_sha256") or "",
        )  # fmt: skip
    except KeyError as exc:
        raise ValueError(f"no {exc.args[0]!r}") from None
    except TypeError:
        raise ValueError("a field of the wrong type") from None
