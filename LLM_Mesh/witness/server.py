"""``llm-mesh ledger witness --listen``: C2SP ``tlog-witness``'s ``add-checkpoint``, served.

``POST /add-checkpoint`` (the submission prefix is the server's root) takes a log's
``old N`` line, consistency proof and signed checkpoint and answers as the spec says
(``core/tlog_witness.py``: 200 with the cosignature line, 400 / 403 / 404 / 409 / 422;
413 for a body over ``MAX_REQUEST`` bytes, read no further; 405 for another method, 404
for another path). The decision is ``core/witness.decide``'s, the one the pull witness
makes.

Check and persist are one step: an ``asyncio.Lock`` holds every request from reading the
state to writing it, so two requests cannot both pass against one old size (the spec's
race: a cosignature for N+K, then one for N rolling back K leaves). A cosigned
checkpoint's state is saved (``witness/state.save_state``: synced, renamed into place)
before the 200 leaves; a failed save answers 500 and cosigns nothing. The checkpoint
cosigned last, posted again (anyone can: checkpoints are public), is cosigned again
without a write (the state is unchanged). The state is read
once, at start, from the file: a restart resumes from what was cosigned last, so a
replayed old request gets 409 with the newer size. One witness per home
(``witness.lock``, held by the caller).

Only evidence of log misbehaviour is logged at WARNING with the note offered: a checkpoint
the log signed (its signature verified) of the size this witness cosigned with another
root (the 409 that is not ``text/x.tlog.size``), or of size 0 with a root that is not the
empty tree's (a 422 no proof decided: :func:`_evidence`). Every other refusal of a checkpoint the
log signed is logged at INFO, without the note, and the state is unchanged: the log's
checkpoints are public, so anyone can post an old one or the newest from another old size
(a 409 naming this witness's size; the log itself is told its witness's size so after
each restart), or the newest with a garbage proof (a 422: a proof that does not verify
proves nothing against the log, whatever signed the checkpoint).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from LLM_Mesh.core.checkpoint import Checkpoint
from LLM_Mesh.core.tlog_witness import (
    ADD_CHECKPOINT,
    MAX_REQUEST,
    Answer,
    Malformed,
    judge,
    origin_of,
    parse_request,
)
from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.core.witness import ROLLBACK, SPLIT_VIEW, STALE, Cosigned, cosign
from LLM_Mesh.witness.state import load_state, save_state

__all__ = ["WitnessService", "bind", "parse_listen", "serve", "witness_app"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def _evidence(kind: str, status: int, cp: Checkpoint | None) -> bool:
    """Whether a refusal is evidence of the log's misbehaviour (logged at WARNING with the
    note): a split view that no proof decided, so that only the log could have made it --
    the size cosigned with another root (409), or a size-0 checkpoint whose root is not
    the empty tree's (422). A proof that does not verify proves nothing (anyone's)."""
    if kind != SPLIT_VIEW or cp is None:
        return False
    return status == 409 or cp.tree_size == 0


class WitnessService:
    """The witness behind ``add-checkpoint``: its key, name, trusted log keys (per origin,
    raw Ed25519 public keys) and state (``state_path``, read now)."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        name: str,
        state_path: Path,
        log_keys: Mapping[str, Sequence[bytes]],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.key, self.name, self.state_path = key, name, state_path
        self.log_keys = {o: list(k) for o, k in log_keys.items()}
        self.state: dict[str, Cosigned] = load_state(state_path)
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()

    async def add_checkpoint(self, body: bytes) -> Answer:
        """The answer to one ``add-checkpoint`` body (module docstring)."""
        try:
            req = parse_request(body)
        except Malformed as exc:
            return Answer(400, f"{exc}\n")
        async with self._lock:  # check and persist atomically (tlog-witness)
            origin = origin_of(req.note)
            last = self.state.get(origin)
            decision, refused = judge(last, req, self.log_keys)
            if refused is not None:
                if _evidence(decision.kind, refused.status, decision.checkpoint):
                    log.warning(
                        "add-checkpoint refused (%s, %d): %s; offered: %r",
                        decision.kind, refused.status, decision.message, req.note,
                    )  # fmt: skip
                elif decision.checkpoint is not None or decision.kind in (ROLLBACK, STALE):
                    log.info("add-checkpoint refused (%s, %d): %s", decision.kind,
                             refused.status, decision.message)  # fmt: skip
                return refused
            cp = decision.checkpoint
            if cp is None:  # pragma: no cover - decide opens what it cosigns
                return Answer(500, "no checkpoint\n")
            if last is None or (last.size, last.root) != (cp.tree_size, cp.root_hash):
                new = dict(self.state)  # (the one cosigned before again: nothing to save)
                new[origin] = Cosigned(cp.tree_size, cp.root_hash, req.note)
                await asyncio.to_thread(save_state, self.state_path, new)  # before the answer
                self.state = new
            line = cosign(self.key, self.name, req.note, int(self._wall_clock()))
        log.info("cosigned %s at size %d: %s", origin, cp.tree_size, decision.message)
        return Answer(200, line)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is past ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and ascii_digits(declared) and int(declared) > limit:
        return None
    got = bytearray()
    async for chunk in request.stream():
        got += chunk
        if len(got) > limit:
            return None
    return bytes(got)


def witness_app(service: WitnessService) -> Starlette:
    """The ASGI app: ``POST /add-checkpoint`` only."""

    async def add_checkpoint(request: Request) -> Response:
        body = await _read_capped(request, MAX_REQUEST)
        if body is None:
            return Response(
                f"a body is at most {MAX_REQUEST} bytes\n", 413, media_type="text/plain"
            )
        ans = await service.add_checkpoint(body)
        return Response(ans.body, ans.status, headers={"Content-Type": ans.content_type})

    return Starlette(routes=[Route(ADD_CHECKPOINT, add_checkpoint, methods=["POST"])])


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen``: ``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare port is loopback's."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = LOOPBACK, text
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: PORT, HOST:PORT or [IPv6]:PORT (port 0: any free)")
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one; ``getsockname`` says which)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(128)
    return sock


def serve(service: WitnessService, sock: socket.socket) -> None:
    """Serve ``service`` on the bound ``sock`` with uvicorn until interrupted."""
    import uvicorn

    from LLM_Mesh.slow_clients import guarded_http

    config = uvicorn.Config(
        witness_app(service), log_level="warning", access_log=False, lifespan="off",
        http=guarded_http(),  # no slowloris: a request arrives within READ_TIMEOUT_S
        # no X-Forwarded-* believed from anyone: the witness goes by no client address, and
        # uvicorn's default read $FORWARDED_ALLOW_IPS ("*" in many images) and rewrote the
        # scope's client and scheme from a stranger's headers (found 2026-12-06, trust36)
        proxy_headers=False,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
