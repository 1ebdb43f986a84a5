"""``llm-mesh receipt fetch HASH``: a stored receipt nobody received, fetched for its payer.

A stream its client cut before the node's final chunk has a receipt that reached nobody;
the gateway stores it (``registry/cut_receipts.py``) and ``GET /v1/receipts/{hash}``
(``registry/receipts_api.py``) serves it to the API key that paid for it. :func:`fetched`
asks it as every keyed command does (``common.keyed_client``, ``MeshClient.keyed_get``: the registry's replicas in
turn, the replica that answered last first, the home's node.toml ``registry_ca``, the API
key checked before it is sent), read to ``receipt_verify.MAX_INPUT`` within the command's
``--timeout``; ``receipt_commands.fetch_command`` then verifies it as ``receipt verify``
does. The registry's 404 (``unknown_receipt``) is said as what it means: not this key's
receipt, or none stored; any other 404 (a node's URL given, no such route) as that.
"""

from __future__ import annotations

import json
import re
from typing import Any

from LLM_Mesh.cli.common import keyed_client
from LLM_Mesh.cli.overall_timeout import Deadline
from LLM_Mesh.config import Settings
from LLM_Mesh.core.receipt_verify import MAX_INPUT
from LLM_Mesh.errors import MeshError, ModelNotFound, UnknownReceipt

__all__ = ["HASH", "fetched", "not_a_hash"]

HASH = re.compile(r"[0-9a-f]{64}")  # a receipt's hash: SHA-256, lowercase hex


def not_a_hash(text: str) -> str | None:
    """Why ``text`` is no receipt hash (None: it is one); said before anything is sent."""
    if HASH.fullmatch(text):
        return None
    return ("not a receipt hash: 64 lowercase hexadecimal characters (a ledger entry's "
            "receipt_hash, or `llm-mesh ledger statement`'s NO RECEIPT line)")  # fmt: skip


def fetched(settings: Settings, receipt_hash: str, deadline: Deadline) -> str:
    """The registry's answer for ``receipt_hash`` (``GET /v1/receipts/{hash}`` with
    ``settings.api_key``), as JSON text ``receipt verify`` reads; its ``UnknownReceipt``
    said in words; any other 404 (a node's URL given as the registry's, a server without
    the route) said as that, in its words (found 2026-12-07, review39: every 404 was said
    as "not yours or unknown"); the client's ``MeshError`` (unreachable, 401, ...)
    otherwise."""
    asked = f"/v1/receipts/{receipt_hash}"
    answered: list[str] = []

    async def go() -> dict[str, Any]:
        async with keyed_client(settings) as client:
            try:
                return await client.keyed_get(asked, MAX_INPUT)
            finally:
                answered.append(client.base_url)

    run = deadline.then(settings.registry_url, "the receipt was not fetched")
    try:
        answer = run(go())
    except UnknownReceipt as exc:  # the registry's own word on it
        raise UnknownReceipt(
            f"the registry holds no receipt {receipt_hash} for this API key (404): it is not "
            "yours (another key paid for it) or it is unknown there (only a stream its "
            "client cut before its end has its receipt stored, kept "
            "LLM_MESH_CUT_RECEIPT_KEEP_DAYS days; an answer you received carries its own)"
        ) from exc
    except ModelNotFound as exc:  # a 404 of another kind: no registry's word on a receipt
        where = answered[-1] if answered else settings.registry_url
        raise MeshError(
            f"{where} answered 404 for GET {asked}, not a registry's answer of a receipt "
            "(unknown_receipt): is it a registry's URL (not a node's), of a version that "
            f"serves /v1/receipts? It said: {exc.message}"
        ) from exc
    return json.dumps(answer)
