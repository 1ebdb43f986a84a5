"""``GET /v1/earnings``: an operator's earnings, for the operator only.

Authenticated by the operator's token (``Authorization: Bearer <operator token>``,
the one its nodes register with; the store keeps only its SHA-256): none, an unknown
one or a revoked operator's is 401 ``invalid_credential``. ``?node=ID`` narrows the
answer to one node, which must be one of the operator's (else 403 ``forbidden``);
``?days=N`` (1–366, default 30) is the window in UTC days, today included. Without
``node`` the answer covers what was paid to the operator's account, so another
operator's nodes never appear. What is counted: ``registry/earnings.py``; ``unpaid``: the
requests the operator's nodes served in the window that nobody was charged for, as the
gateway could not put the charges in their receipts, per node, model and why
(``registry/unpaid.py``, migration 0035; found 2026-12-07, money43: never told). Each
``by_node`` row says whether the node is ``simulated`` now and whether its key is
``revoked``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.core.retention import EARNINGS_MAX_DAYS
from LLM_Mesh.errors import Forbidden, InvalidCredential, MeshError
from LLM_Mesh.registry.admin import WRONG_OPERATOR_TOKENS, CredentialTries, bearer
from LLM_Mesh.registry.earnings import earnings
from LLM_Mesh.registry.errors import JSONAnswer
from LLM_Mesh.registry.ledger_accounts import operator_accounts
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import OperatorRecord, Store
from LLM_Mesh.registry.runtime import Runtime, get_runtime
from LLM_Mesh.registry.strict_query import STRICT
from LLM_Mesh.registry.unpaid import UnpaidStore, stores_unpaid
from LLM_Mesh.registry.valid_rates import EarningsReads

router = APIRouter(tags=["Earnings"])

MAX_DAYS = EARNINGS_MAX_DAYS  # settled settlements are kept longer (core/retention.py)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class EarningsSum(_Open):
    requests: int
    earned: int
    fees: int
    rewards: int
    total: int


class EarningsDay(EarningsSum):
    day: str


class EarningsModel(_Open):
    model: str
    requests: int
    earned: int
    fees: int
    # "all": every one of the operator's nodes registered with the model runs it on a
    # simulated engine; "some": some do; null: none does (or none is registered now)
    simulated: Literal["all", "some"] | None = None


class EarningsNode(EarningsSum):
    node_id: str
    healthy_s: int
    # every model it registered runs a simulated engine (its answers made up), as the
    # registry sees it now (``GET /mesh/nodes``'s ``simulated``); false when not registered
    simulated: bool = False
    # its node key is revoked (``llm-mesh registry nodes revoke``): it earns nothing more here
    revoked: bool = False


class EarningsUnpaid(_Open):
    node_id: str
    model: str
    reason: str  # why the request could not be charged (the gateway's words)
    requests: int  # how many the node served so, in the window


class EarningsReport(_Open):
    """Micro-NetworkTokens throughout: ``earned`` from requests (after the network's
    fee), ``rewards`` for uptime, ``total`` both; ``balance`` is the accounts' now (the
    keyed ``account`` and ``old_account``, the unkeyed one of before migration 0018, whose
    balance stays there: every figure adds both up; null when nothing names that old
    account, an operator of since keyed accounts: there is nothing to add);
    ``held``: what nodes under quarantine (a failed canary probe) earned since, kept in
    their held accounts until the admin clears them (``held_by_node``: node id → µNT)."""

    object: Literal["earnings"]
    operator: str
    account: str
    old_account: str | None = None
    unit: Literal["micro-NetworkToken"]
    since: str
    until: str
    node: str | None
    nodes: list[str]
    balance: int
    held: int = 0
    held_by_node: dict[str, int] = {}
    totals: EarningsSum
    by_day: list[EarningsDay]
    by_model: list[EarningsModel]
    by_node: list[EarningsNode]
    # what the nodes of ``by_node`` simulated now earned (``total``): labelled by what each
    # runs now, the store records no engine per request or period (words43)
    simulated_total: int = 0
    # requests the nodes served that nobody was charged for (their receipts could not carry
    # the charges: unpaid), per node, model and reason; ``unpaid_requests`` sums them (a
    # request two of the nodes served, a continued stream, counts for each)
    unpaid: list[EarningsUnpaid] = []
    unpaid_requests: int = 0


class _Error(_Open):
    error: dict[str, str | None]


async def operator_from_token(
    headers: Mapping[str, str], store: Store, tries: CredentialTries | None = None,
    reads: EarningsReads | None = None,
) -> OperatorRecord:  # fmt: skip
    """The live operator whose token is the request's bearer token; else 401. With
    ``tries`` (``GET /v1/earnings``) at most ``admin.WRONG_OPERATOR_TOKENS_PER_MIN`` unknown
    tokens a minute from an address, then 429 before the store is read (found 2026-12-06,
    attack35: unbounded here while the dashboard's operator view counted its look-ups).
    With ``reads`` (:func:`earnings_reads`: ``GET /v1/earnings`` and the operator view) at
    most ``Settings.earnings_reads_per_min`` a minute per token, counted before the read and
    given back for an unknown token, then 429 (found 2026-12-07, attack44: a valid token's
    reads had no bound; ``registry/valid_rates.py``)."""
    token = bearer(headers)
    if token is None:
        raise InvalidCredential(
            "earnings need the operator's token: Authorization: Bearer <operator token>"
        )
    scope = None
    if tries is not None:
        scope = tries.before("operator-token", WRONG_OPERATOR_TOKENS, "operator tokens")
    token_hash = hash_secret(token)
    if reads is not None:
        reads.take(token_hash)
    op = await store.operator_by_token(token_hash)
    if op is None:
        if reads is not None:
            reads.give(token_hash)  # not a token: the address's count above
        if tries is not None:
            tries.wrong(scope, WRONG_OPERATOR_TOKENS)
        # what registration says of it (found 2026-12-07, newuser43: the bare words, and
        # `llm-mesh earnings` printed only them)
        raise InvalidCredential(
            "unknown operator token: not one this registry made (a typo, or another "
            "registry's or home's); its admin makes one with `llm-mesh registry operators add NAME`"
        )
    if op.revoked_at is not None:  # the token reads nothing (docs/security.md); what the
        # operator can still do said, never the account (found 2026-12-07, user41b: the bare
        # "operator X is revoked" left a revoked operator no way to see what it was paid)
        raise InvalidCredential(
            f"operator {op.name} is revoked: its token reads no earnings any more. What its "
            "account was paid before stays in the public ledger: `llm-mesh ledger statement "
            "--account operator:...` lists it, with the account an earlier `llm-mesh "
            "earnings` named; or ask the registry's admin"
        )
    return op


@router.get(
    "/v1/earnings",
    **STRICT,
    response_model=None,
    responses={
        200: {"model": EarningsReport},
        401: {"model": _Error, "description": "no, an unknown or a revoked operator token"},
        403: {"model": _Error, "description": "`node` is not one of the operator's nodes"},
        429: {
            "model": _Error,
            "description": "too many unknown tokens from this address, or too many reads "
            "with this token (`LLM_MESH_EARNINGS_READS_PER_MIN`)",
        },
    },
)
async def get_earnings(
    request: Request,
    node: Annotated[str | None, Query(max_length=128, description="one of your nodes")] = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="UTC days, today included")] = 30,
) -> JSONAnswer:
    """The operator's earnings per day, per model and per node, totals and balance."""
    rt = get_runtime(request)
    client = request.client.host if request.client else None
    op = await operator_from_token(
        request.headers, rt.store, CredentialTries(rt.limiter, client, rt.clock()),
        earnings_reads(rt),
    )  # fmt: skip
    # its own nodes by one indexed read (found 2026-12-07, attack44: every operator and node
    # key read per call, 20-180 ms at 20,000 keys on SQLite), each with whether it is revoked
    keys = await rt.store.operator_node_keys(op.name)
    nodes = sorted(keys)
    if node is not None and node not in nodes:
        # what makes a node one's own, and where to see why it is not (found 2026-12-06:
        # a refused node's `node info` said only this); the same for none and another's
        raise Forbidden(
            f"node {node!r} is not one of operator {op.name}'s nodes: a node is its "
            "operator's once it has registered with this registry under the operator's "
            "token (`llm-mesh node info` on the node says whether it did, and why not)",
            param="node",
        )
    if rt.ledger is None:  # pragma: no cover - wiring bug
        raise MeshError("the ledger is not set up")
    account, old_account = await operator_accounts(await rt.ledger.engine(), op.name)
    report = await earnings(
        await rt.ledger.engine(),
        operator=op.name,
        account=account,
        old_account=old_account,
        nodes=nodes,
        node=node,
        days=days,
        now=rt.wall_clock(),
    )
    answer = report.to_json()
    label_simulated(rt.table, [node] if node is not None else nodes, answer)
    label_revoked(keys, answer)
    await add_unpaid(rt.store, [node] if node is not None else nodes, report.since, answer)
    return JSONAnswer(answer)


def earnings_reads(rt: Runtime) -> EarningsReads | None:
    """The process's count of earnings reads per operator token (``None``: no limit)."""
    per_min = rt.settings.earnings_reads_per_min
    return None if per_min is None else EarningsReads(rt.limiter, rt.clock(), per_min)


async def add_unpaid(store: Store, nodes: Sequence[str], since: date, out: dict[str, Any]) -> None:
    """``out``'s ``unpaid`` (what ``nodes`` served from the UTC day ``since`` on that nobody
    was charged for, per node, model and reason: ``registry/unpaid.py``) and
    ``unpaid_requests`` (their sum). Also the dashboard's operator view's."""
    unpaid = []
    if stores_unpaid(store):
        unpaid = await cast(UnpaidStore, store).unpaid_served(nodes, since)
    out["unpaid"] = [u.to_json() for u in unpaid]
    out["unpaid_requests"] = sum(u.requests for u in unpaid)


def label_revoked(keys: Mapping[str, bool], out: dict[str, Any]) -> None:
    """Each ``by_node`` row's ``revoked``: the node's key is revoked (``keys``: node id →
    revoked, ``Store.operator_node_keys``; found 2026-12-07, newuser44: ``llm-mesh
    earnings`` listed a revoked node as any other)."""
    for row in out["by_node"]:
        row["revoked"] = keys.get(row["node_id"], False)


def label_simulated(table: NodeTable, nodes: Iterable[str], out: dict[str, Any]) -> None:
    """Simulated figures said (found 2026-12-05: a sim node's earnings read like a real
    one's; its model's row and the total too, in ``llm-mesh earnings``): each ``by_node``
    row's ``simulated``, ``simulated_total`` (what those nodes earned), and each
    ``by_model`` row's ``simulated``: ``"all"`` when every one of ``nodes`` registered with
    the model here runs it on a simulated engine, ``"some"`` when some do, ``None`` when
    none does (or none is registered now). Also the dashboard's operator view's."""
    for row in out["by_node"]:
        entry = table.get(row["node_id"])
        row["simulated"] = entry is not None and entry.simulated
    out["simulated_total"] = sum(r["total"] for r in out["by_node"] if r["simulated"])
    hosted: dict[str, list[bool]] = {}
    for node_id in nodes:
        entry = table.get(node_id)
        for model_id, m in (entry.models if entry is not None else {}).items():
            hosted.setdefault(model_id, []).append(m.simulated)
    for row in out["by_model"]:
        sims = hosted.get(row["model"], [])
        row["simulated"] = ("all" if all(sims) else "some") if any(sims) else None
