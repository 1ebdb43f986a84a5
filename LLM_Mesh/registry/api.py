"""The registry's own endpoints under ``/mesh`` (nodes register and heartbeat here).

Contract: ``docs/ARCHITECTURE.md`` ("Node ↔ registry"). Every node message is checked by the
runtime's :class:`~LLM_Mesh.registry.node_auth.NodeAuthenticator` on its raw bytes *before* the
body is parsed, and a refused one changes nothing. The node table and the router
(:class:`~LLM_Mesh.registry.routing.Routing`) are then updated first (routing sees a node at once);
the store is written on the same request, so a restarted registry knows every node it had.
The other ``/mesh`` endpoints (the listings, the admin's passes, ``GET /mesh/identity``,
``/healthz``) are ``registry/api_views.py``'s, whose router this one includes. A registration's answer
carries the gateway's key, which the node pins (``core/gateway_auth.py``), and the agreement of the
node's session key (``core/gateway_session.py``; heartbeats carry the node's X25519 key too).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from LLM_Mesh import __version__
from LLM_Mesh.core.identity import (
    HDR_BEAT_TOKEN,
    HDR_NODE,
    MAX_CLOCK_SKEW_S,
    MAX_NODE_ID_CHARS,
    MessageKind,
)
from LLM_Mesh.core.limits import json_shape
from LLM_Mesh.core.netguard import NodeUrl
from LLM_Mesh.core.priority import reported_keyed_at
from LLM_Mesh.core.schemas import (
    MAX_HEARTBEAT_BYTES,
    MAX_MODEL_ID_CHARS,
    MAX_MODELS_PER_NODE,
    MAX_REGISTRATION_CONTAINERS,
    Heartbeat,
    KeyRotation,
    NodeRegistration,
    NodeState,
    RegistrationAccepted,
)
from LLM_Mesh.errors import (
    Forbidden,
    InvalidRequest,
    NodeIdMismatch,
    OperatorTokenRefused,
    RateLimited,
    Revoked,
    UnknownNode,
)
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.admin import (
    WRONG_NODE_SIGNATURES,
    WRONG_OPERATOR_TOKENS,
    CredentialTries,
)
from LLM_Mesh.registry.api_views import router as views_router
from LLM_Mesh.registry.api_views import tries_of
from LLM_Mesh.registry.errors import invalid_from_pydantic
from LLM_Mesh.registry.node_auth import (
    SIGNATURE_REFUSALS,
    check_signed_token,
    revocation_signed,
    token_refusal_signed,
)
from LLM_Mesh.registry.node_table import NodeEntry, check_answer
from LLM_Mesh.registry.node_transport import check_transport
from LLM_Mesh.registry.ports import AddressTaken, NodeRecord
from LLM_Mesh.registry.runtime import Runtime, get_runtime
from LLM_Mesh.registry.snapshot import entry_from_record, pin_stored_certificate
from LLM_Mesh.registry.uptime_credit import heartbeat_credit_limit_s, known_load
from LLM_Mesh.registry.valid_rates import ValidBeats, ValidRegistrations

router = APIRouter()
_M = TypeVar("_M", bound=BaseModel)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _record(reg: NodeRegistration, now: datetime) -> NodeRecord:
    return NodeRecord(
        node_id=reg.node_id,
        url=reg.url,
        region=reg.region,
        models=[m.model_dump(mode="json") for m in reg.models],
        hardware=reg.hardware.model_dump(mode="json"),
        max_concurrency=reg.max_concurrency,
        max_queue=reg.max_queue,
        version=reg.version,
        state=reg.state.value,
        registered_at=now,
        last_heartbeat_at=now,
        heard_age_s=0.0,  # heard now: the store stamps its own clock with it (0033)
        tls_fingerprint=reg.tls_fingerprint or "",  # every replica pins it (snapshot.py)
        keeps_no_prompts=reg.keeps_no_prompts,  # every replica routes by it (snapshot.py)
    )


def _unknown(node_id: str) -> UnknownNode:
    return UnknownNode(f"node {node_id!r} is not registered; register again", param="node_id")


def _declares_otherwise(entry: NodeEntry, hb: Heartbeat) -> bool:
    """A heartbeat declaring another ``keeps_no_prompts`` than this replica routes by."""
    return hb.keeps_no_prompts is not None and hb.keeps_no_prompts != entry.keeps_no_prompts


def _undeclared(node_id: str) -> UnknownNode:
    """404 ``unknown_node``: the node registers again at once (node/agent.py), with its
    declaration, which every replica then routes by (found 2026-12-06, keepers34)."""
    return UnknownNode(
        f"node {node_id!r} declares a keeps_no_prompts its registration here does not tell; "
        "register again",
        param="node_id",
    )


_SCHEMA_EXTRA = {"requestBody": {"content": {"application/json": {}}, "required": True}}


def _parse(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise invalid_from_pydantic(exc) from None


@router.post("/mesh/nodes", response_model=RegistrationAccepted, openapi_extra=_SCHEMA_EXTRA)
async def register_node(request: Request) -> RegistrationAccepted:
    """A node announces itself (or re-registers): signed, with an operator token.

    Verified before the body is parsed; then upserted into the table and the store. A 403
    ``revoked`` carries the registry key's signature (``node_auth.revocation_signed``), and
    so does a 401 for an unknown operator token (``node_auth.token_refusal_signed``). Per
    address, ``admin.WRONG_OPERATOR_TOKENS_PER_MIN`` unknown tokens a minute (found
    2026-12-06, attack35b; ``GET /v1/earnings``' count) and ``WRONG_NODE_SIGNATURES_PER_MIN``
    refused signatures (``node_auth.SIGNATURE_REFUSALS``, found 2026-12-06, trust36: each an
    Ed25519 verify, unbounded), each counted as it begins and given back unless refused for
    it (rot41: counted after the verify, tries in flight at once all found the counts free),
    then 429 before the body is read or anything verified, but to a node registering again
    with the key held for its id (``before_reregister``, regs39). A node id's valid
    registrations are bounded (``valid_rates.ValidRegistrations``, limits45: counted as the
    signature holds, given back when refused for its credential; past the bound 429)."""
    rt = get_runtime(request)
    tries = tries_of(request, rt)
    again = scope = signed = None  # see the docstring: regs39's again, rot41's two counts
    try:
        scope = tries.before_taken("operator-token", WRONG_OPERATOR_TOKENS, "operator tokens")
        signed = tries.before_taken("node-signature", WRONG_NODE_SIGNATURES, "node signatures")
    except RateLimited as exc:
        tries.not_wrong(scope, WRONG_OPERATOR_TOKENS)  # taken before the other's 429
        node_id = rt.node_auth.known_signer(request.headers)
        if node_id is None:
            raise
        token = request.headers.get(HDR_BEAT_TOKEN)  # past the id's count (regtoken40)
        again, scope, signed = tries.before_reregister(node_id, exc, token), None, None
    refused, regs = False, _valid_registrations(rt)  # its valid ones per id (limits45)
    try:
        accepted = await _register(rt, request.headers, await request.body(), regs)
    except Revoked as exc:
        raise revocation_signed(
            rt.revocations, MessageKind.REGISTER, request.headers, exc
        ) from None
    except OperatorTokenRefused as exc:  # unknown or none: counted (none costs no read)
        refused, scope = True, None  # it stays counted
        regs.refused(exc)  # a relay with another token (attack32b): not the node's
        raise token_refusal_signed(rt.revocations, request.headers, exc) from None
    except SIGNATURE_REFUSALS as exc:  # an honest node's never fail (a stopped clock's: backoff)
        refused, signed = True, None  # it stays counted
        regs.refused(exc)
        raise
    finally:
        tries.reregistered(again, refused)
        tries.not_wrong(scope, WRONG_OPERATOR_TOKENS)
        tries.not_wrong(signed, WRONG_NODE_SIGNATURES)
    tries.verified(accepted.node_id)  # its heartbeats' address (before_verify, trust37)
    return accepted


async def _register(
    rt: Runtime, headers: Mapping[str, str], body: bytes, regs: ValidRegistrations
) -> RegistrationAccepted:
    claimed = headers.get(HDR_NODE)
    if claimed:  # past the id's bound: 429 before the verify (valid_rates.py)
        regs.check(claimed)
    verified = rt.node_auth.check_registration(headers, body)
    if verified.node_id is not None:  # counted as its signature holds (no await since)
        regs.signed(verified.node_id, verified.seq)
    if json_shape(body)[1] > MAX_REGISTRATION_CONTAINERS:  # before the parser: bytes only
        raise InvalidRequest(
            f"a registration holds at most {MAX_REGISTRATION_CONTAINERS} JSON arrays and "
            f"objects (a node lists at most {MAX_MODELS_PER_NODE} models)",
            param="models",
        )
    reg = _parse(NodeRegistration, body)
    if verified.node_id is not None and reg.node_id != verified.node_id:
        raise NodeIdMismatch(
            f"the registration names node {reg.node_id!r} but is signed by {verified.node_id}",
            param="node_id",
        )
    check_signed_token(reg.operator_token_sha256, verified.operator_token)
    checked: list[tuple[NodeUrl, tuple[str, ...]]] = []

    async def check_address() -> None:  # no SSRF: global addresses only (address_pins.py)
        # by the URL as written, before any lookup (told to token holders only): a plain-http
        # URL off loopback hears plain_http_remote, not its address's refusal nor that it does
        # not resolve, and costs no DNS; by the addresses after: a ``localhost`` is loopback
        # only where it resolved there (a hosts file). Neither alone refuses the same URLs.
        check_transport(reg, rt.settings.node_transport)
        _check_address_free(rt, reg)
        node, addrs = await rt.pins.check(reg.url)
        check_transport(reg, rt.settings.node_transport, addrs)
        checked.append((node, addrs))

    # the operator token, the address (its transport, where it points), the key: none if refused
    grant = await rt.node_auth.admit_registration(verified, check_address)
    if verified.node_id is not None:  # its key claimed: its credential held
        regs.held(verified.node_id)
    if rt.quality is not None:
        # the held set again, now that the key is claimed: a key new to the registry
        # whose operator had another node caught after the admission's quarantine check
        # (``operator_quarantined``) and before this claim is held from now on, not from
        # this replica's next reload of the quarantines (no query while none is known)
        await rt.quality.refresh_held()
    if not checked:  # an authenticator that did not call it
        await check_address()
    now, live_s = _utcnow(), rt.settings.heartbeat_expiry_s  # store's clock where stamped
    try:  # the address rule again, in the store's write: other replicas' nodes too
        stored = await rt.store.upsert_node(
            _record(reg, now), address_live_since=now - timedelta(seconds=live_s),
            address_live_s=live_s,
        )  # fmt: skip
    except AddressTaken as exc:  # found 2026-12-05: two replicas each let one key in
        raise _address_taken(reg, exc.holder) from None
    if stored is False:
        # its key was revoked after the claim (found 2026-12-03: the row was written
        # online and other replicas' node polls routed it): nothing stored, out here too
        rt.table.revoke(reg.node_id)
        rt.routing.remove(reg.node_id)
        raise Revoked(f"node {reg.node_id} is revoked")
    # nothing from here awaits: the table, pins and routing change with the row
    rt.pins.pin(checked[0])  # only these addresses are called (address_pins.py)
    if rt.settlement is not None:
        rt.settlement.note_operator(reg.node_id, grant.operator)  # paid for its answers
    rt.pins.pin_certificate(reg.url, reg.tls_fingerprint)  # its TLS certificate, if it gave one
    rt.routing.upsert(rt.table.register(reg))
    # the per-node session key (core/gateway_session.py); None: requests are signed
    kx = rt.signer.kx_answer(reg.node_id, reg.gateway_kx_key)
    return RegistrationAccepted(
        node_id=reg.node_id,
        heartbeat_interval_s=rt.settings.heartbeat_interval_s,
        heartbeat_expiry_s=rt.settings.heartbeat_expiry_s,
        registry_version=__version__,
        operator=grant.operator,
        seq=grant.seq,
        max_clock_skew_s=MAX_CLOCK_SKEW_S,
        registry_time=rt.wall_clock(),
        registry_id=rt.signer.registry_id,
        registry_public_key=rt.signer.public_key,
        gateway_kx_key=kx[0] if kx else None,
        gateway_kx_signature=kx[1] if kx else None,
        key_rotation=KeyRotation(**rt.key_rotation) if rt.key_rotation else None,
        key_rotations=[KeyRotation(**link) for link in rt.key_rotations] or None,
        gateway_body_sha256=True,  # GatewaySigner.headers sends it
        # sent back with its beats, if it says it does (registry/beat_tokens.py, beattoken38)
        beat_token=rt.beat_tokens.issue(reg.node_id, sends=bool(reg.beat_tokens)),
    )


def _check_address_free(rt: Runtime, reg: NodeRegistration) -> None:
    """403 ``node_url_taken`` when another live node holds the URL's address: certificates
    are pinned per address, so a second key there would replace (or drop) that node's pin
    and the gateway would refuse its certificate (``core/liveness.holds_address``; found
    2026-12-05)."""
    holder = rt.table.address_holder(reg.url, reg.node_id)
    if holder is not None:
        raise _address_taken(reg, holder)


def _address_taken(reg: NodeRegistration, holder: str) -> Forbidden:
    """This replica's table, or the store's write (a node another replica registered,
    ``Store.upsert_node``), found another live node at ``reg.url``'s address."""
    return Forbidden(
        f"node url {reg.url} is the address of another live node ({holder}); one node "
        "per host and port: register again once it is gone, or use another port",
        param="url",
        reason="node_url_taken",
    )


def _pin_unknown(pins: AddressPins, url: str) -> bool:
    """An https node this registry knows only from the store: it has not seen its TLS
    certificate's fingerprint (it comes with the signed registration), so the node is
    asked to register again (404 ``unknown_node``) rather than failing its pinned checks."""
    return url.startswith("https://") and not pins.registered(url)


@router.post("/mesh/nodes/{node_id}/heartbeat", openapi_extra=_SCHEMA_EXTRA)
async def heartbeat(node_id: str, request: Request) -> dict[str, Any]:
    """The node's load and state, signed; 404 ``unknown_node`` when it must re-register.

    A registry app serves this path ahead of FastAPI (``registry/hot_heartbeat.py``) with
    :func:`absorb_heartbeat` too; this route is the same for other ASGI apps and tools."""
    rt = get_runtime(request)
    return await absorb_heartbeat(rt, node_id, request.headers, await request.body(),
                                  tries_of(request, rt))  # fmt: skip


async def absorb_heartbeat(
    rt: Runtime, node_id: str, headers: Mapping[str, str], body: bytes,
    tries: CredentialTries | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One signed heartbeat of ``node_id``: checked on its raw bytes (``headers``
    case-insensitive), then the table, the router and the store (batched). Past
    ``MAX_HEARTBEAT_BYTES`` it is refused before the signature is checked. ``tries``: the
    client's count of unknown node ids (``SignedNodeAuth.check_message``). Its arrival goes
    with it: the store's stamp less the whole wait (``heartbeat_writes``)."""
    arrived = None if rt.heartbeats is None else rt.heartbeats.clock()
    if len(body) > MAX_HEARTBEAT_BYTES:
        raise InvalidRequest(
            f"a heartbeat holds at most {MAX_HEARTBEAT_BYTES} bytes (its loaded_models: at "
            f"most {MAX_MODELS_PER_NODE} model ids of {MAX_MODEL_ID_CHARS} characters, as "
            f"a registration's; this one {len(body)} bytes)",
            param="loaded_models",
        )
    beats = _valid_beats(rt, node_id)  # 429 past the node's bound, before the verify (limits44)
    beats.check(node_id)  # counted as its signature holds (limits45, valid_rates.py)
    try:
        await rt.node_auth.check_message(
            MessageKind.HEARTBEAT, node_id, headers, body, tries, beats.signed
        )
    except Revoked as exc:  # verified: the node's own, counted (a revoked node's flood too)
        raise revocation_signed(rt.revocations, MessageKind.HEARTBEAT, headers, exc) from None
    except BaseException as exc:
        beats.refused(exc)  # refused for its credential: the failing counts'
        raise
    beats.held(node_id)
    hb = _parse(Heartbeat, body)
    known = rt.table.get(node_id)
    if known is not None and known.state is NodeState.OFFLINE:
        # it said goodbye (DELETE): no late heartbeat brings it back (a live node re-registers)
        raise _unknown(node_id)
    if known is not None and _pin_unknown(rt.pins, known.url):
        raise _unknown(node_id)
    if known is not None and _declares_otherwise(known, hb):
        raise _undeclared(node_id)
    # its previous heartbeat here (the table's clock): the time this one may credit; the
    # load its report then claimed (it steered the router since) and what the mesh knew it
    # had sent it then (core/rewards.explained_load_credit_s)
    previous = known.last_heartbeat if known is not None else None
    claimed = known.reported_in_flight + known.reported_queued if known is not None else 0
    known_then = known.known_load if known is not None else 0
    if not rt.table.heartbeat(node_id, hb):
        # another replica may have registered it in the shared store
        rec = await rt.store.get_node(node_id)
        if rec is None or rec.state == NodeState.OFFLINE.value:
            raise _unknown(node_id)
        pin_stored_certificate(rt.pins, rec)
        if _pin_unknown(rt.pins, rec.url):
            raise _unknown(node_id)
        # a URL now refused (a plain-http node stored before that): None, so it registers
        # again and hears why (403 plain_http_remote)
        entry = entry_from_record(
            rt.table, rec, heard_now=True, transport=rt.settings.node_transport
        )
        if entry is None:
            raise _unknown(node_id)
        if _declares_otherwise(entry, hb):  # not routed on a heartbeat's word: registers
            raise _undeclared(node_id)
        rt.routing.upsert(entry)
        rt.table.heartbeat(node_id, hb)
    rt.routing.heartbeat(node_id, hb)
    if hb.gateway_kx_key is not None:  # a restarted registry or a replica agrees here
        rt.signer.agree(node_id, hb.gateway_kx_key)
    # uptime rewards: the time since its last heartbeat counts as routable, up to the
    # expiry, unless this registry's last active check of it failed, its router has it
    # ejected, or it refuses (core/rewards.serving, refusal_credit_s), cut to the share of
    # the load it claimed that the mesh sent it (explained_load_credit_s): uptime_credit.py
    entry = rt.table.get(node_id)
    known_now = known_load(rt, node_id, entry.models) if entry is not None else 0
    credit_s = heartbeat_credit_limit_s(
        rt, node_id, previous=previous, claimed=claimed, known=max(known_then, known_now)
    )
    if entry is not None:  # what explains the load this report claims, at the next one
        entry.known_load = known_now
    # its last keyed request as it said (wall clock): the other replicas read it from the
    # store with the heartbeat (node_sync.py) and count the places it keeps for keyed ones
    heard_at = _utcnow()
    keyed_s = reported_keyed_at(hb.keyed_age_s, heard_at.timestamp())
    keyed_at = None if keyed_s is None else datetime.fromtimestamp(keyed_s, timezone.utc)
    if rt.heartbeats is not None:  # batched, behind the answer (heartbeat_writes.py)
        rt.heartbeats.touch(
            node_id, heard_at, hb.state.value, credit_limit_s=credit_s, keyed_at=keyed_at, arrived=arrived
        )  # fmt: skip
    elif not await rt.store.touch_heartbeat(
        node_id, heard_at, hb.state.value, credit_limit_s=credit_s, keyed_at=keyed_at
    ):
        raise _unknown(node_id)
    answer: dict[str, Any] = {"ok": True, "heartbeat_interval_s": rt.settings.heartbeat_interval_s}
    # the gateway's id: a node that pinned another registers again, and a rotated key's
    # answer (``key_rotation``) lets it follow (core/key_rotation.py)
    answer["registry_id"] = rt.signer.registry_id
    # its gateway sends the body's SHA-256 (X-Mesh-Body-SHA256), said here too: a node that
    # registered with an older registry, or lost the registration's answer, learns it here
    # (node/gateway_guard.py, found 2026-12-04)
    answer["gateway_body_sha256"] = True
    # this registry's active checks of the node, from the table (core/check_state.py): the
    # node logs when they turn to failing, and `llm-mesh node info` shows it
    health = check_answer(entry) if entry is not None else None
    if health is not None:
        answer["health"] = health
    # past the counts of forged beats, its next one is verified with it (registry/beat_tokens.py)
    answer["beat_token"] = rt.beat_tokens.issue(node_id)
    return answer


def _valid_registrations(rt: Runtime) -> ValidRegistrations:
    """A node's valid registrations, a bound per id (``registry/valid_rates.py``)."""
    return ValidRegistrations(rt.limiter, rt.clock(), rt.settings.heartbeat_interval_s)


def _valid_beats(rt: Runtime, node_id: str) -> ValidBeats:
    """A node's valid heartbeats and goodbyes, a bound per id (``registry/valid_rates.py``).
    400 first for a path's id longer than any node's (``MAX_NODE_ID_CHARS``), not said back:
    each id is kept while counted, and a made-up one's entry stays while an older one counts
    (found 2026-12-07, attack45: ids of 60,000 characters, refused at once, grew a registry
    by 440 MB in 40 s); and for one with a line break or a control character, which no node
    id has (found 2026-12-07, attack45: ``a%0Ab`` signed as a listed node reached
    ``identity.signed_bytes``' refusal, a 500 and a traceback logged per request)."""
    if len(node_id) > MAX_NODE_ID_CHARS or not node_id.isprintable():
        raise InvalidRequest(
            f"a node id is at most {MAX_NODE_ID_CHARS} printable characters (this one: "
            f"{len(node_id)}, not said back)",
            param="node_id",
        )
    return ValidBeats(rt.limiter, rt.clock(), rt.settings.heartbeat_interval_s)


@router.delete("/mesh/nodes/{node_id}", status_code=204)
async def deregister_node(node_id: str, request: Request) -> Response:
    """The node's final OFFLINE, signed: it leaves routing (its record stays).

    The store is written first, then the table: a store poll (``node_sync.py``) that
    began before the table changed may have read the node online, and skips it; one that
    began after reads the goodbye. A heartbeat written after it does not undo it: the
    store leaves an OFFLINE row as it is until the node registers again."""
    rt = get_runtime(request)
    body = await request.body()
    headers = request.headers
    beats = _valid_beats(rt, node_id)  # a goodbye counts as a heartbeat (valid_rates.py)
    beats.check(node_id)
    try:
        await rt.node_auth.check_message(
            MessageKind.DEREGISTER, node_id, headers, body, tries_of(request, rt), beats.signed
        )
    except Revoked as exc:  # verified: the node's own, counted (a revoked node's flood too)
        raise revocation_signed(rt.revocations, MessageKind.DEREGISTER, headers, exc) from None
    except BaseException as exc:
        beats.refused(exc)
        raise
    beats.held(node_id)
    try:
        in_store = await rt.store.set_node_state(node_id, NodeState.OFFLINE.value)
    finally:  # out of routing here even when the store failed (the answer is then a 500)
        in_table = rt.table.set_state(node_id, NodeState.OFFLINE)
        rt.routing.remove(node_id)
        rt.signer.forget(node_id)
    if not (in_table or in_store):
        raise _unknown(node_id)
    return Response(status_code=204)


router.include_router(views_router)  # the other /mesh endpoints, after these (api_views.py)
