"""``GET /v1/receipts/{receipt_hash}``: a stored receipt nobody received, for its payer.

A stream its client cut before the node's final chunk has a receipt its ledger entries
commit to (``receipt_hash``) that reached nobody; the gateway stores it
(``registry/cut_receipts.py``, migration 0031, since 2026-12-06, money37). It is served to
the API key whose user paid for it (``Authorization: Bearer <API key>``: the payer's account
``user:<pseudonym of the key id>``) and to the admin key (``Authorization: Bearer <admin
key>``: any, the pool's included); to anyone else it is 404 ``unknown_receipt``, as one that
was never stored, so a ledger entry's public ``receipt_hash`` says nothing of its counts or
output hash to a stranger. A wrong or revoked key is 401, as on every ``/v1`` endpoint. The
answer is what ``llm-mesh receipt verify`` reads (``mesh.receipt``, and
``mesh.ledger_request_id`` for ``--ledger``)::

    {"object": "receipt", "receipt_hash": "…", "payer": "user:…", "created_at": 1765…,
     "mesh": {"receipt": {…}, "ledger_request_id": "…"}}

so ``curl -H "Authorization: Bearer $KEY" $REGISTRY/v1/receipts/$HASH | llm-mesh receipt
verify -`` checks the registry's countersignature and each node's signature (a `cut`
part's signed prompt count included) as for an answer's own receipt.
"""

from __future__ import annotations

import re
from typing import Any, cast

from fastapi import APIRouter, Request

from LLM_Mesh.errors import UnknownReceipt
from LLM_Mesh.registry.access import ANONYMOUS_TOKEN, Authenticate
from LLM_Mesh.registry.admin import CredentialTries, bearer, check_admin
from LLM_Mesh.registry.api_keys import KEY_PREFIX
from LLM_Mesh.registry.cut_receipts import CutReceiptStore, stores_cut_receipts
from LLM_Mesh.registry.errors import JSONAnswer
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.runtime import get_runtime
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.strict_query import STRICT

router = APIRouter(tags=["Ledger"])

_HASH = re.compile(r"[0-9a-f]{64}")
_API_KEY = KEY_PREFIX + "_"

_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "a wrong or revoked API key, or a wrong admin key"},
    404: {"description": "no stored receipt of that hash for this caller (`unknown_receipt`)"},
    429: {"description": "too many unknown keys tried from this address"},
}


@router.get("/v1/receipts/{receipt_hash}", **STRICT, responses=_ANSWERS, response_model=None)
async def get_receipt(request: Request, receipt_hash: str) -> JSONAnswer:
    """A stored receipt of a stream its client cut (nobody received it), for its payer's
    API key or the admin key; what `llm-mesh receipt verify` reads."""
    rt = get_runtime(request)
    token = bearer(request.headers)
    # an API key is ``lmk_…`` (``api_keys.KEY_PREFIX``); any other bearer is the admin's
    admin = token is not None and token != ANONYMOUS_TOKEN and not token.startswith(_API_KEY)
    account: str | None = None
    if admin:
        peer = request.client.host if request.client else None
        await check_admin(
            request.headers, rt.store, CredentialTries(rt.limiter, peer, rt.clock(), rt.admin_memo)
        )
    else:
        peer_host = request.client.host if request.client else "unknown"
        client = Client(peer_host, request.headers.get("authorization"))
        key = await Authenticate(rt.keys, rt.limiter, rt.clock).identify(client)
        account = None if key is None else user_account(key.key_id)
    unknown = UnknownReceipt(f"no stored receipt {receipt_hash[:64]!r} of yours")
    if (not admin and account is None) or not _HASH.fullmatch(receipt_hash):
        raise unknown
    store = rt.store
    if not stores_cut_receipts(store):
        raise unknown
    row = await cast(CutReceiptStore, store).cut_receipt(receipt_hash)
    if row is None or (not admin and row.payer != account):
        raise unknown
    mesh = {"receipt": row.receipt, "ledger_request_id": row.request_id}
    return JSONAnswer({"object": "receipt", "receipt_hash": row.receipt_hash, "payer": row.payer,
                       "created_at": row.created_at, "mesh": mesh})  # fmt: skip
