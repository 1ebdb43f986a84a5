"""Stage 5, account: what a request cost, who is paid, and the record it leaves.

From the job and its :class:`~LLM_Mesh.registry.job.Tally` (written by the send
stage) this stage builds the gateway's ``mesh`` object (who answered, how fast, how
many attempts, what it cost: :func:`build_mesh`, priced per node part by
:func:`~LLM_Mesh.core.pricing.part_costs`, never above the job's estimate) and queues
the request's record for the store (:class:`~LLM_Mesh.registry.ports.RequestRecord`:
no prompt, no answer; :class:`~LLM_Mesh.registry.request_log.RequestWriter` writes it
off the hot path; a whole answer's record is made once the answer is written:
:func:`mesh_answer` then :func:`record_answer`). The same record, with its HTTP status and
attempts, goes to the gateway's metrics and request log line (:class:`~LLM_Mesh.registry.telemetry.Telemetry`):
one place where a request ends.

Settlement: the client's :class:`~LLM_Mesh.registry.job.Payment` (reserved by the
admit stage) is paid with :func:`charge_parts` (:func:`price_parts` less the parts nobody
pays, with each part's network fee; computed once, by :func:`make_receipt`, whose receipt
signs those very amounts, and summed for ``mesh.cost``) — each node for the completion tokens
it delivered, the prompt once (a stream cut short before any node counted it: at a
usual count, :func:`charged_prompt_tokens`; so is an answer whose node said no count) — *before* the answer is released (:func:`pay`: a
non-stream before its body, a stream before its final chunk, ``StreamAccount.commit``),
or, for a stream cut short, when it ends (``StreamAccount.close``); a request without
an answer is voided (:func:`void`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from LLM_Mesh.core.delivered import answer_bytes, completion_cap
from LLM_Mesh.core.node_refusal import Refusal, node_refusal
from LLM_Mesh.core.part_match import NOT_SAID, match_parts
from LLM_Mesh.core.pricing import UNIT, network_fee, part_costs
from LLM_Mesh.core.receipt import PartStatus, encode_header
from LLM_Mesh.core.receipt_check import check_part
from LLM_Mesh.core.receipt_money import Signed, Unsigned, price_receipt
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.cut_receipts import cut_receipt
from LLM_Mesh.registry.job import Charged, Client, Job, Payment, Tally
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.store_unpaid import Unpaid

__all__ = [
    "StreamAccount",
    "account_answer",
    "account_failure",
    "account_passthrough",
    "build_mesh",
    "charge_parts",
    "charged_prompt_tokens",
    "make_receipt",
    "mesh_answer",
    "pay",
    "payable_parts",
    "price_parts",
    "priced_prompt_tokens",
    "record_answer",
    "stated_prompt_tokens",
    "void",
]

log = logging.getLogger(__name__)


def _elapsed_ms(rt: Runtime, job: Job) -> float:
    return (rt.clock() - job.started) * 1000.0


def _record(
    rt: Runtime,
    job: Job,
    *,
    node_id: str | None,
    outcome: str,
    error_code: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    cost: int = 0,
    status: int = 200,
    attempts: int = 0,
) -> None:
    """Queue the request's record for the store (no text, no I/O here); count it and log
    its line (``rt.telemetry``)."""
    rec = RequestRecord(
        request_id=job.logged_id,  # never the client's own id in clear
        node_id=node_id,
        model=job.model,
        stream=job.stream,
        outcome=outcome,
        error_code=error_code,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        cost=cost,
        created_at=datetime.now(timezone.utc),
    )
    rt.writer.submit(rec)
    elapsed = _elapsed_ms(rt, job) if latency_ms is None else latency_ms
    rt.telemetry.request(job, rec, status=status, attempts=attempts, latency_ms=elapsed)


def priced_prompt_tokens(job: Job, tally: Tally) -> int:
    """The node's prompt count as priced: at most the estimate's bound of the prompt
    (``Job.prompt_bound``; above an honest node's count), so a node paid at most for the
    completion it delivered (``core/delivered.py``) cannot claim a huge prompt instead and be
    paid the whole estimate (found 2026-12-04). 0 when no node said. The receipt and the
    answer's ``usage`` keep the node's own count; the ``mesh`` object, the request's record
    and its metrics state this one (:func:`stated_prompt_tokens`)."""
    return min(tally.prompt_tokens, job.prompt_bound)


def charged_prompt_tokens(job: Job, tally: Tally) -> int:
    """The prompt tokens a request is charged for: the node's count (its ``usage``; after a
    continuation, the continuing node's less the tokens already sent), else, when no node
    said (a stream cut short before any node's final chunk: the node broke and nobody
    continued, or the client left; a stream or an answer whose node sent no ``usage``), a
    usual count of the prompt and its messages
    (:func:`~LLM_Mesh.core.pricing.usual_prompt_tokens`, at most the estimate's bound): the
    node did process the prompt, and the gateway has no tokenizer. A stream the client cut
    (``cancelled``) whose node said its count as its stream opened pays that count, at most
    the bound (``core/prompt_count.py``; found 2026-12-06: the usual count, a third of a
    prompt of digits). The receipt keeps the node's own counts (0 for a part without a
    final chunk)."""
    if tally.prompt_tokens > 0:
        return priced_prompt_tokens(job, tally)
    if tally.said_prompt_tokens > 0 and tally.outcome == "cancelled":
        return min(tally.said_prompt_tokens, job.prompt_bound)
    return job.prompt_usual()


def _delivered(tally: Tally) -> bool:
    return tally.completion_tokens > 0 or any(tokens for _, tokens in tally.parts)


def stated_prompt_tokens(job: Job, tally: Tally) -> int:
    """The prompt tokens the ``mesh`` object, the request's record and its metrics state:
    those charged (:func:`charged_prompt_tokens`) when a token was delivered, else the
    node's as priced (0 when no node said). Where no node said, the usual count charged
    (found 2026-12-04: a ``missing`` part charged for its prompt's usual count was stated
    0 prompt tokens)."""
    return (
        charged_prompt_tokens(job, tally) if _delivered(tally) else priced_prompt_tokens(job, tally)
    )


def price_parts(job: Job, tally: Tally) -> list[tuple[str, int]]:
    """``(node id, µNT)`` per node part of the answer, in order: the earlier nodes of a
    continued stream, then the last; each for the completion tokens it delivered, the
    prompt (:func:`charged_prompt_tokens`) once, with the last part that delivered a
    token (the node whose count is charged, which processed the prompt again after the
    part before it broke: ``core/pricing.part_costs``), the whole capped at the job's
    estimate."""
    parts = list(tally.parts)
    if tally.node_id is not None:
        parts.append((tally.node_id, tally.completion_tokens))
    completions = [tokens for _, tokens in parts]
    prompt = charged_prompt_tokens(job, tally) if any(completions) else 0
    amounts = part_costs(job.price, prompt, completions, cap=job.estimate)
    return [(node, amount) for (node, _), amount in zip(parts, amounts, strict=True)]


def payable_parts(job: Job, tally: Tally) -> tuple[list[tuple[str, int]], list[int | None]]:
    """:func:`price_parts` less the parts the receipt says are not payable (one whose node's
    receipt did not verify: ``Part.payable``), and less any part no receipt part matches
    (``core/part_match.py``: a wiring fault; a part that delivered nothing has none and costs
    nothing anyway); the client pays nothing for them either. Part by part: another part of
    the same node (a stream continued A → B → A) is paid as its own receipt part says (until
    2026-12-07, money44, one unpayable part of a node zeroed all its parts when the counts
    differed). Returned with the match it was made by: the index in ``tally.node_receipts``
    of each priced part's receipt part, or ``None`` (empty when the tally has no receipt
    parts: every part payable, nothing matched); matched once a request (money45: before,
    :func:`make_receipt` matched them again, the same answer)."""
    parts = price_parts(job, tally)
    checked = tally.node_receipts
    if not checked:
        return parts, []
    found = _receipt_parts(tally, [node for node, _ in parts])
    return [
        (node, amount if j is not None and checked[j].payable else 0)
        for (node, amount), j in zip(parts, found, strict=True)
    ], found


def _receipt_parts(tally: Tally, nodes: Sequence[str]) -> list[int | None]:
    """The index in ``tally.node_receipts`` of each priced part's receipt part (``nodes``:
    :func:`price_parts`' node ids), or ``None`` (``core/part_match.py``). The send stage
    wrote which priced part each is (``Observed.part``), one receipt part per output, in
    order."""
    checked, outputs = tally.node_receipts, tally.outputs
    if len(outputs) == len(checked):
        said = [(c.node_id, o.part) for c, o in zip(checked, outputs, strict=True)]
    else:  # receipt parts not made from these outputs (not the send stage's): by order
        said = [(c.node_id, NOT_SAID) for c in checked]
    return match_parts(nodes, said)


def charge_parts(
    job: Job, tally: Tally, payment: Payment | None
) -> tuple[list[Charged], list[int | None]]:
    """``(node id, µNT, fee)`` per node part, in order: :func:`payable_parts`, each with the
    network's fee of it (⌈amount × the payment's ``fee_bps`` / 10000⌉; 0 when the request is
    not settled); with the receipt part each priced part was matched to (:func:`payable_parts`'
    match, which :func:`make_receipt` puts each charge on). The one computation of what a
    request is charged: the receipt signs these (:func:`make_receipt`), ``mesh.cost`` is
    their sum, the payment writes them to the ledger (``settle``: amount − fee, ``fee``)."""
    fee_bps = 0 if payment is None else payment.fee_bps
    parts, found = payable_parts(job, tally)
    return [(node, amount, network_fee(amount, fee_bps)) for node, amount in parts], found


def _charged(job: Job, tally: Tally, payment: Payment | None) -> list[Charged]:
    """``tally.charged``: priced once (by :func:`make_receipt`, else now)."""
    if tally.charged is None:
        tally.charged = charge_parts(job, tally, payment)[0]
    return tally.charged


async def pay(job: Job, tally: Tally, client: Client) -> None:
    """Pay the client's reservation with the answer's payable parts (before it is released):
    the parts its ``mesh.cost`` was summed from and its receipt signs (``tally.charged``)."""
    payment = client.payment
    if payment is not None:
        await payment.pay(_charged(job, tally, payment), tally.receipt_hash)


def void(client: Client) -> None:
    """The request got no answer: its reservation is released, nothing is paid."""
    if client.payment is not None:
        client.payment.void()


# the ``mesh`` fields only the gateway sets (a node's answer carrying them, e.g. another
# request's ``ledger_request_id`` or a made-up ``failover_from``, is not believed)
_GATEWAYS_SAY = frozenset((
    "ledger_request_id", "failover_from", "continued", "cost", "currency", "attempts",
    "request_id", "receipt_request_id", "receipt",
))  # fmt: skip


def build_mesh(
    rt: Runtime,
    job: Job,
    tally: Tally,
    node_mesh: Any,
    *,
    latency_ms: float,
    payment: Payment | None,
) -> dict[str, Any]:
    """The node's ``mesh`` completed with the gateway's view (who, how fast, what cost);
    the cost goes into ``tally.cost``."""
    node_id = tally.node_id or ""
    # the node's word for _GATEWAYS_SAY is not passed on as the gateway's (a copy without
    # them, the rest in the node's order)
    mesh: dict[str, Any] = (
        {k: v for k, v in node_mesh.items() if k not in _GATEWAYS_SAY}
        if isinstance(node_mesh, dict) else {}
    )  # fmt: skip
    hosted = rt.table.hosted(node_id, job.model)
    completion = tally.completion_tokens + tally.before
    mesh["node_id"] = node_id
    mesh["model"] = job.model
    if hosted is not None:
        mesh.setdefault("engine", hosted.engine)
        mesh["simulated"] = bool(mesh.get("simulated")) or hosted.simulated
    mesh["request_id"] = job.request_id
    if job.settle_key != job.request_id:  # a client-chosen id: the ledger's is made unique
        mesh["ledger_request_id"] = job.settle_key
    if job.node_request_id:  # ... and the nodes and the receipt had a gateway-made one
        mesh["receipt_request_id"] = job.node_request_id
    mesh["latency_ms"] = round(latency_ms, 3)
    mesh["ttft_ms"] = None if tally.ttft_ms is None else round(tally.ttft_ms, 3)
    mesh["prompt_tokens"] = stated_prompt_tokens(job, tally)
    mesh["completion_tokens"] = completion
    mesh["currency"] = UNIT
    mesh["attempts"] = tally.attempts
    if tally.failed_nodes:
        mesh["failover_from"] = list(tally.failed_nodes)
        mesh["continued"] = True
    receipt = make_receipt(rt, job, tally, payment)
    if receipt is None:
        mesh.pop("receipt", None)  # a node's own receipt is never passed on as the gateway's
    else:
        mesh["receipt"] = receipt
    # what the client pays: the parts the receipt says are payable (make_receipt's)
    tally.cost = mesh["cost"] = sum(amount for _, amount, _ in _charged(job, tally, payment))
    return mesh


def _unpaid(rt: Runtime, job: Job, nodes: Sequence[str], told: Callable[[str], str]) -> None:
    """Each of ``nodes`` told, through the store (``registry/unpaid.py``: counted for its
    operator's ``GET /v1/earnings``; found 2026-12-07, money43), why the request did not pay
    it: ``told(node)``, its own reason or the request's (never another node's id)."""
    if rt.unpaid is None:
        return
    day = datetime.fromtimestamp(rt.wall_clock(), timezone.utc).date().isoformat()
    for node in dict.fromkeys(nodes):
        rt.unpaid.submit(Unpaid(job.logged_id, node, job.model, told(node), day))


def _unmatched(rt: Runtime, job: Job, tally: Tally, found: Sequence[int | None]) -> None:
    """A priced part with a price but no receipt part (a wiring fault: the send stage makes
    one for every part that delivered a token) is not paid (:func:`payable_parts`): logged,
    its node told."""
    # (``found``: one per priced part, :func:`payable_parts`' match; a charge made past
    # them has none, which ``price_receipt`` finds)
    lost = [node for (node, amount), j in zip(price_parts(job, tally), found, strict=False)
            if amount > 0 and j is None]  # fmt: skip
    if lost:
        log.error("receipt of %s: parts of %s had no receipt part; not charged, not paid",
                  job.logged_id, ", ".join(n[:64] for n in lost))  # fmt: skip
        _unpaid(rt, job, lost, lambda _: "a part this node served had no part of the receipt")


def make_receipt(
    rt: Runtime, job: Job, tally: Tally, payment: Payment | None
) -> dict[str, Any] | None:
    """Check each node's part, price the request and match its priced parts to those
    receipt parts (:func:`charge_parts`, once) and countersign its receipt with those amounts (``core/receipt.py``, version 4; not settled:
    ``payment`` None, no amounts): sets ``tally.node_receipts``, ``tally.charged``,
    ``tally.receipt`` and ``tally.receipt_hash``; ``None`` when there is nothing to sign (no
    part was relayed) or no registry key.

    Per request: one Ed25519 verify per node part, one signature, one SHA-256 of the
    receipt's bytes (the output was hashed once by the send stage; the client's own id, when
    it chose one, by the parse stage: ``job.client_id_hash``, signed with the request)."""
    signer = rt.receipts
    if signer is None or not tally.outputs or tally.output_sha256 is None:
        return None
    registry_id = signer.registry_id
    parts = tuple(
        check_part(obs, registry_id=registry_id, request_id=job.forwarded_id, model=job.model,
                   keys=rt.node_keys)
        for obs in tally.outputs
    )  # fmt: skip
    tally.node_receipts = parts  # (what charge_parts reads: which parts are payable)
    charged, found = charge_parts(job, tally, payment)  # (found: each priced part's, once)
    tally.charged = charged
    if None in found:
        _unmatched(rt, job, tally, found)
    payer, fee_bps = (None, 0) if payment is None else (payment.payer, payment.fee_bps)
    signed = price_receipt(charged, found, parts, payer, fee_bps)
    if isinstance(signed, Unsigned):  # found 2026-12-07 (money42): signed version 2, charged
        log.error("receipt of %s: its charges do not match its parts (%s); not charged (its "
                  "receipt signs that nobody was)", job.logged_id, signed.why)  # fmt: skip
        tally.charged = []  # no charge the receipt does not sign: mesh.cost 0, paid nothing
        if rt.metrics is not None:  # the operators' unpaid share seen on /metrics (small42)
            rt.metrics.unpriced(job.model)
        _unpaid(rt, job, [node for node, amount, _ in charged if amount > 0], signed.told)
        signed = Signed(None, parts)  # its receipt: not settled
    completion = sum(p.completion_tokens for p in parts)  # = the tally's, when it finished
    prompt = tally.prompt_tokens
    if not prompt and len(parts) == 1:  # a cut part's signed prompt count (money36), or 0
        prompt = parts[0].prompt_tokens
    receipt, receipt_hash = signer.countersign(
        job.forwarded_id,
        job.model,
        prompt,
        completion,
        tally.output_sha256,
        signed.parts,
        job.client_id_hash,
        signed.money,
    )  # (always version 4: its fees rounded up; core/receipt.py)
    tally.receipt_hash = receipt_hash
    tally.receipt = receipt.to_json(receipt_hash)
    return tally.receipt


def account_answer(
    rt: Runtime, job: Job, tally: Tally, data: dict[str, Any], payment: Payment | None
) -> None:
    """A non-stream's answer: its ``mesh`` set in ``data``, its record queued."""
    record_answer(rt, job, tally, mesh_answer(rt, job, tally, data, payment))


def mesh_answer(
    rt: Runtime, job: Job, tally: Tally, data: dict[str, Any], payment: Payment | None
) -> float:
    """A non-stream's answer: its ``mesh`` set in ``data`` (what the client receives; priced
    for ``payment``, the client's: ``None`` when settlement is off); the latency it states,
    in ms, which :func:`record_answer` records. The gateway's pipeline records after the
    answer is written (``pipeline.Pipeline._complete``)."""
    latency_ms = _elapsed_ms(rt, job)
    mesh = build_mesh(rt, job, tally, data.get("mesh"), latency_ms=latency_ms, payment=payment)
    if tally.waited_s > 0:
        mesh["waited_ms"] = round(tally.waited_s * 1000.0, 3)
    data["mesh"] = mesh
    tally.outcome = "ok"
    if tally.completion_cap < 0:  # the usage audit's cap of the part (core/delivered.py),
        # unless the send stage set it from the bytes it counted (send.Exchange.complete)
        echoed = job.prompt_text if job.echo else ""
        tally.completion_cap = completion_cap(
            answer_bytes(data, job.choices, echoed, job.text_only), job.choices, job.stop_bytes
        )
    return latency_ms


def record_answer(rt: Runtime, job: Job, tally: Tally, latency_ms: float) -> None:
    """An answered non-stream's record queued, counted and logged (:func:`mesh_answer`
    first)."""
    _record(
        rt, job, node_id=tally.node_id, outcome="ok", prompt_tokens=stated_prompt_tokens(job, tally),
        completion_tokens=tally.completion_tokens, latency_ms=latency_ms,
        ttft_ms=tally.ttft_ms, cost=tally.cost, attempts=tally.attempts,
    )  # fmt: skip
    if rt.usage_audit is not None:
        rt.usage_audit.answered(job, tally)


def account_passthrough(
    rt: Runtime,
    job: Job,
    client: Client,
    node_id: str,
    status: int,
    content: bytes,
    attempts: int = 0,
) -> Refusal:
    """A 4xx the node decided (its ``status`` and body): what the client gets
    (``core/node_refusal.py``, read once and returned), recorded as an error with the node's
    code when it is one a node's refusal may have, else ``http_<status>``, and the status
    the client got: a node's own string is not stored (it could be any text, the prompt's
    included, and one longer than the column made PostgreSQL refuse the request log's whole
    batch). Nothing is paid (:func:`void`); the client's token limit is settled at 0."""
    refusal = node_refusal(status, content)
    _record(rt, job, node_id=node_id, outcome="error",
            error_code=refusal.code or f"http_{status}", status=refusal.status,
            attempts=attempts)  # fmt: skip
    void(client)
    client.used(0)
    return refusal


def account_failure(rt: Runtime, job: Job, client: Client, exc: MeshError) -> None:
    """No answer at all (the send stage gave up): recorded with the error's code; nothing
    is paid (:func:`void`); the client's token limit is settled at 0."""
    node = exc.extra.get("node_id")
    attempts = exc.extra.get("attempts")
    _record(
        rt,
        job,
        node_id=node if isinstance(node, str) else None,
        outcome="error",
        error_code=exc.code,
        latency_ms=_elapsed_ms(rt, job),
        status=exc.status,
        attempts=attempts if isinstance(attempts, int) else 0,
    )
    void(client)
    client.used(0)


class StreamAccount:
    """A stream's accounting: the final chunk's ``mesh`` and ``usage``, its payment (before
    that chunk, :meth:`commit`; or at the end of a stream cut short, :meth:`close`) and
    the record."""

    __slots__ = ("client", "job", "rt", "tally")

    def __init__(self, rt: Runtime, job: Job, tally: Tally, client: Client) -> None:
        self.rt, self.job, self.tally, self.client = rt, job, tally, client

    async def commit(self) -> None:
        """The relay's ``Commit``: pay for the answer before its final chunk goes out."""
        await pay(self.job, self.tally, self.client)

    async def close(self) -> None:
        """The stream ended, however: pay what was delivered (once), then record it. A
        stream cut off before its receipt went out gets one made here first (for the
        ledger entry to commit to)."""
        tally, payment = self.tally, self.client.payment
        self._made_here()
        tally.cost = sum(amount for _, amount, _ in _charged(self.job, tally, payment))
        await pay(self.job, tally, self.client)
        self.record()

    def _made_here(self) -> None:
        """The receipt of a stream cut off before one went out, made for the ledger entry to
        commit to (once). Nobody receives it: it is written to the store
        (``registry/cut_receipts.py``, since 2026-12-06, money37; ``GET
        /v1/receipts/{receipt_hash}`` serves it to its payer), and when a part carries its
        node's signed prompt count (``core/prompt_count.py``, money36) it is also logged
        whole (``X-Mesh-Receipt``'s form), before the write, and only then (``submit_logged``:
        a failed write names it, regs39)."""
        rt, job, tally = self.rt, self.job, self.tally
        if tally.receipt is not None or not tally.outputs:
            return
        payment = self.client.payment
        made = make_receipt(rt, job, tally, payment)
        if made is None:
            return
        whole = any(p.status is PartStatus.CUT and p.node_signature for p in tally.node_receipts)
        if whole:  # before the write: in the log whole once (the writer's lines then short)
            log.info("receipt of %s, cut by its client, with its node's signed prompt count: %s",
                     job.logged_id, encode_header(made))  # fmt: skip
        if rt.cut_receipts is not None:
            row = cut_receipt(made, job.settle_key or job.request_id,
                              payment.payer if payment is not None else "", rt.wall_clock())  # fmt: skip
            (rt.cut_receipts.submit_logged if whole else rt.cut_receipts.submit)(row)

    def finalize(self, obj: dict[str, Any], continued: bool) -> None:
        """Set the gateway's ``mesh`` (and after a continuation the summed ``usage``) on
        the node's final chunk ``obj`` (the relay's ``Finalize``)."""
        tally = self.tally
        obj["mesh"] = build_mesh(
            self.rt, self.job, tally, obj.get("mesh"), latency_ms=_elapsed_ms(self.rt, self.job),
            payment=self.client.payment,
        )  # fmt: skip
        if continued:  # the nodes' own counts, as the receipt keeps them (not those priced)
            completion = sum(part.completion_tokens for part in tally.outputs)
            obj["usage"] = {
                "prompt_tokens": tally.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": tally.prompt_tokens + completion,
            }

    def finalize_error(self, obj: dict[str, Any]) -> None:
        """A stream that ends with an error after some text (nobody could continue it): the
        error event gets ``mesh.receipt`` for the parts delivered (the relay's ``on_error``)."""
        receipt = make_receipt(self.rt, self.job, self.tally, self.client.payment)
        if receipt is not None:
            obj["mesh"] = mesh = {"request_id": self.job.request_id, "receipt": receipt}
            if self.job.node_request_id:
                mesh["receipt_request_id"] = self.job.node_request_id

    def record(self) -> None:
        """Queue the stream's record (once it ended, however it ended). A stream cut off
        before any receipt was sent (the client left) still gets one made here, for the
        ledger (``tally.receipt_hash``, ``tally.node_receipts``); nobody receives it."""
        rt, job, tally = self.rt, self.job, self.tally
        self._made_here()
        _record(
            rt, job, node_id=tally.node_id, outcome=tally.outcome or "cancelled",
            error_code=tally.error_code, prompt_tokens=stated_prompt_tokens(job, tally),
            completion_tokens=tally.completion_tokens + tally.before,
            latency_ms=_elapsed_ms(rt, job), ttft_ms=tally.ttft_ms, cost=tally.cost,
            attempts=tally.attempts,
        )  # fmt: skip
        if tally.outcome == "ok" and rt.usage_audit is not None:
            rt.usage_audit.answered(job, tally)
