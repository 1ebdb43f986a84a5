"""Witnesses' cosignatures of the ledger's checkpoints: the registry's two endpoints.

- ``GET /v1/ledger/checkpoints/latest``: the newest signed checkpoint (what a witness,
  ``llm-mesh ledger witness``, asks for), its note with the cosignatures stored so far;
  404 when none is signed yet;
- ``POST /v1/ledger/cosignatures`` ``{"tree_size": N, "cosignature": "— <name> <base64>"}``:
  a witness hands in its ``cosignature/v1`` line on the checkpoint signed at ``N``
  (``core/witness.py``). Accepted only from a witness key this registry was configured
  with (``LLM_MESH_LEDGER_WITNESSES``; none: every one is refused, 403) and only if it
  verifies over that checkpoint's body, with a timestamp at most ``MAX_FUTURE_S`` ahead of
  this registry's clock (403 otherwise; 400 for a malformed body or a size with no
  checkpoint; 413 above ``MAX_BODY`` bytes). Stored once per (size, witness) in the
  store's ``ledger_cosignatures`` (the first kept; ``stored: false`` for a repeat), so every
  replica serves it: the checkpoint notes of ``GET /v1/ledger/checkpoints`` carry the
  lines after the registry's own signature (a signed note may hold several).

No credential: a cosignature is its own proof, and only the configured witnesses' can
be stored (at most one per checkpoint each), so strangers cannot grow the store.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from LLM_Mesh.core.checkpoint import split_note
from LLM_Mesh.core.witness import FUTURE_S, BadCosignature, open_cosignature, parse_vkey
from LLM_Mesh.errors import Forbidden, InvalidRequest, MeshError, PayloadTooLarge
from LLM_Mesh.registry.errors import JSONAnswer, invalid_from_pydantic
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_api import CheckpointView
from LLM_Mesh.registry.runtime import get_runtime
from LLM_Mesh.registry.strict_query import STRICT

__all__ = ["MAX_BODY", "MAX_FUTURE_S", "router"]

router = APIRouter(tags=["Ledger"])

MAX_BODY = 4096  # a cosignature request is a size and one line of about 150 bytes
MAX_LINE = 1024
MAX_FUTURE_S = FUTURE_S  # a cosignature timestamped further ahead than this is refused
_DASH = "\u2014 "


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class CosignatureIn(_Open):
    tree_size: Annotated[int, Field(ge=1, le=1 << 62, description="the checkpoint's size")]
    cosignature: Annotated[
        str,
        Field(
            max_length=MAX_LINE,
            description="the witness's cosignature/v1 signed-note line: "
            "`— <name> <base64(key ID || timestamp || signature)>`",
        ),
    ]


class CosignatureAccepted(_Open):
    object: Literal["ledger.cosignature"]
    tree_size: int
    witness: str
    time: int
    stored: bool


def _ledger(request: Request) -> SqlLedger:
    rt = get_runtime(request)
    if rt.ledger is None:  # pragma: no cover - wiring bug
        raise MeshError("the ledger is not set up")
    return rt.ledger


@router.get(
    "/v1/ledger/checkpoints/latest",
    responses={200: {"model": CheckpointView}, 404: {"description": "no checkpoint yet"}},
    response_model=None,
    **STRICT,  # it takes no parameter: any is 400 (registry/strict_query.py)
)
async def latest_checkpoint(request: Request) -> JSONAnswer:
    """The newest signed checkpoint, with its witnesses' cosignatures (what a witness reads)."""
    cp = await _ledger(request).latest_checkpoint()
    if cp is None:
        return JSONAnswer(
            {"error": {"message": "no checkpoint is signed yet", "type": "invalid_request_error",
                       "param": None, "code": "no_checkpoint"}},
            status_code=404,
        )  # fmt: skip
    return JSONAnswer(cp.to_json())


@router.post(
    "/v1/ledger/cosignatures",
    responses={
        200: {"model": CosignatureAccepted},
        400: {"description": "malformed, or no checkpoint at that size"},
        403: {"description": "not a configured witness's valid cosignature"},
    },
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CosignatureIn.model_json_schema()}},
        }
    },
)
async def add_cosignature(request: Request) -> JSONAnswer:
    """A witness's cosignature of a checkpoint this registry signed (see the module docstring)."""
    rt = get_runtime(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"a cosignature request is at most {MAX_BODY} bytes")
    try:
        got = CosignatureIn.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise invalid_from_pydantic(exc) from None
    line = got.cosignature.strip()
    if not line.startswith(_DASH) or "\n" in line:
        raise InvalidRequest(
            "a cosignature is one signed-note line: '— <name> <base64>'", param="cosignature"
        )
    line = line[len(_DASH) :]
    name = line.rpartition(" ")[0]
    witnesses = [parse_vkey(t) for t in rt.settings.ledger_witnesses]
    if not witnesses:
        raise Forbidden(
            "this registry accepts no witness cosignatures (its operator lists the witnesses "
            "it accepts in LLM_MESH_LEDGER_WITNESSES)"
        )
    candidates = [w for w in witnesses if w.name == name]
    if not candidates:
        raise Forbidden(
            f"{name[:100]!r} is not a witness this registry accepts (its operator lists "
            "the witnesses' key texts in LLM_MESH_LEDGER_WITNESSES)",
            param="cosignature",
        )
    ledger = _ledger(request)
    cp = await ledger.checkpoint_at(got.tree_size)
    if cp is None:
        raise InvalidRequest(f"no checkpoint is signed at size {got.tree_size}", param="tree_size")
    body_text, _ = split_note(cp.note)
    for wk in candidates:
        try:
            ts = open_cosignature(line, body_text, wk)
        except BadCosignature as exc:
            raise Forbidden(f"{exc} (on the checkpoint at size {got.tree_size})") from None
        if ts is None:
            continue
        if ts > rt.wall_clock() + MAX_FUTURE_S:
            raise Forbidden(f"the cosignature's timestamp {ts} is in the future")
        stored = await ledger.add_cosignature(got.tree_size, wk.vkey, ts, _DASH + line + "\n")
        return JSONAnswer(
            {"object": "ledger.cosignature", "tree_size": got.tree_size, "witness": wk.vkey,
             "time": ts, "stored": stored}
        )  # fmt: skip
    raise Forbidden(
        f"not a cosignature by the key of witness {name[:100]!r} this registry accepts",
        param="cosignature",
    )
