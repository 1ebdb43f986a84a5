"""Fake nodes whose prompt counts are signed with real node keys, and a client that cuts
their stream after its first token: the set-up shared by the tests of what a cut stream is
charged and receipted (``tests/registry/test_charge.py``, ``test_charge_cut_prompt.py``,
``test_charge_cut_stall.py``, ``test_cut_receipts.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import ClientDisconnect

from LLM_Mesh.core.gateway_auth import HDR_GATEWAY
from LLM_Mesh.core.prompt_count import (
    HDR_PROMPT_SIGNATURE,
    HDR_PROMPT_TOKENS,
    claim_header,
    said_prompt_tokens,
)
from LLM_Mesh.core.receipt import NodeReceiptSigner
from tests.asgi import request_then_wait
from tests.registry.helpers import FakeNode, FakeNodes, Harness, sse_chunks
from tests.registry.test_streaming import _scope
from tests.waiting import SOON_S, scaled

MODEL = "mistral-7b"


class Stalls(httpx.AsyncByteStream):
    """A stream of two tokens ("x", "y"), then nothing more: the client leaves first."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in sse_chunks(MODEL, "a", ["x", "y", "z"])[:3]:
            yield chunk
        await asyncio.Event().wait()  # never more: the client leaves first
        yield b""  # pragma: no cover


def signer_of(name: str) -> NodeReceiptSigner:
    seed = hashlib.sha256(b"test node key " + name.encode()).digest()
    return NodeReceiptSigner(Ed25519PrivateKey.from_private_bytes(seed))


# nodes with real keys (their ids derived from them): their prompt counts can be signed
SIGNERS = {s.node_id: s for s in (signer_of("a"), signer_of("b"))}
NODE_A, NODE_B = SIGNERS


def said_headers(node: FakeNode, said: str | None, sign: str = "own") -> dict[str, str]:
    """A stream's answer head saying ``said`` as its prompt count (None: no
    ``X-Mesh-Prompt-Tokens``) and, as ``sign`` says, its signature (``core/prompt_count.py``,
    money36): ``own`` (its node's key, of this request; nodes not in :data:`SIGNERS` cannot),
    ``none``, ``other_key`` (a key that is not the node's), ``other_count`` (its key's of one
    token less: not the count said) or ``other_request`` (its key's, of another request)."""
    headers = {"content-type": "text/event-stream"}
    if said is None:
        return headers
    headers[HDR_PROMPT_TOKENS] = said
    signer, count = SIGNERS.get(node.node_id), said_prompt_tokens(said)
    if sign == "none" or signer is None or count <= 0:
        return headers
    if sign == "other_key":
        signer = signer_of("not " + node.node_id)
    sent = node.calls[-1]["headers"]
    signature = signer.sign_prompt_count(
        registry_id=sent[HDR_GATEWAY],
        request_id="req-earlier" if sign == "other_request" else sent["x-request-id"],
        model=node.calls[-1]["body"]["model"],
        prompt_tokens=count - 1 if sign == "other_count" else count,
    )
    headers[HDR_PROMPT_SIGNATURE] = claim_header(signer.node_key, signature)
    return headers


def stalling_nodes(said: str | None = None, sign: str = "own") -> FakeNodes:
    """Nodes that stream two tokens, saying ``said`` as their prompt count (None: no
    ``X-Mesh-Prompt-Tokens``; signed as ``sign`` says: :func:`said_headers`), then nothing
    more: the client leaves first."""
    nodes = FakeNodes()
    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers=said_headers(node, said, sign), stream=Stalls()
    )
    return nodes


async def cut_after_first_token(h: Harness, key: str, body: dict[str, Any]) -> None:
    """``body`` streamed with ``key``, the client gone once its first token ("x") came."""
    scope = _scope("2.4")
    scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {key}".encode())]
    sent_body = json.dumps({**body, "stream": True}).encode()
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if gone.is_set():
            raise OSError("client went away")
        sent.append(message)
        if message["type"] == "http.response.body" and b'"x"' in message.get("body", b""):
            gone.set()

    app: Any = h.app
    with contextlib.suppress(OSError, ClientDisconnect):
        await asyncio.wait_for(
            app(scope, request_then_wait(sent_body, gone), send), timeout=scaled(SOON_S)
        )
    assert sent[0]["status"] == 200
