"""The admit stage's price check: the request's estimate reserved from its payer, or 402.

:class:`Charge` runs after the rate limit (``admit.default_checks``), before any node is
called. The payer is the API key's user (``user:<pseudonym of the key id>``) or, for an
anonymous request, the community ``pool``. It reserves the job's estimate
(:func:`~LLM_Mesh.core.pricing.estimate`) with
:meth:`~LLM_Mesh.registry.settlement.Settlement.reserve` (atomic in the database: the
payer's available balance, balance less what requests in flight hold, must cover it)
and hands the request a :class:`Payment`; else it refuses with 402 in OpenAI's error
shape: ``insufficient_balance`` (a user) or ``community_pool_exhausted`` (anonymous),
naming the estimate, balance, reserved and available amounts. A dry pool is first
topped up if a new UTC day began. The pool pays for catalog models only: an anonymous
request for a custom model (no canary checks what its node answers) is 402
``api_key_required`` before any reservation, unless it comes from this machine's loopback
(:func:`_custom_refusal`).

The :class:`Payment` is also the admission's :class:`~LLM_Mesh.registry.admit.Hold`:
whatever way the request ends without the account stage paying it (a refusal by a later
check, an error, a replayed answer), the reservation is voided, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response

from LLM_Mesh.core.anonymous_inflight import exempt
from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.core.pricing import estimate
from LLM_Mesh.errors import (
    PaymentRequired,
    PoolExhausted,
    PoolPaysCatalogOnly,
    SettlementUnavailable,
)
from LLM_Mesh.registry.job import Charged, Client, Job
from LLM_Mesh.registry.settle_db import Answer, PaidPart, Reserved
from LLM_Mesh.registry.settlement import Settlement, user_account
from LLM_Mesh.registry.start_retry import log_failed_round

__all__ = ["Charge", "SettledPayment"]

log = logging.getLogger(__name__)


class SettledPayment:
    """One request's reservation: paid with its exact parts, or voided; exactly once."""

    __slots__ = ("done", "estimate", "key", "model", "payer", "settlement", "stream", "written")

    def __init__(
        self,
        settlement: Settlement,
        key: str,
        payer: str,
        model: str,
        estimate: int,
        *,
        stream: bool = True,
    ):
        self.settlement = settlement
        self.key = key
        self.payer = payer
        self.model = model
        self.estimate = estimate
        self.stream = stream  # False: a non-stream's, never paid after its handler ended
        self.done = False
        self.written = False  # the payment's write began: it commits even if we are cancelled

    @property
    def fee_bps(self) -> int:
        return self.settlement.fee_bps

    async def pay(self, parts: Sequence[Charged], receipt_hash: str | None) -> None:
        """Write the parts as priced (``account.charge_parts``: amount and fee, what the
        receipt signs), not priced again."""
        if self.done:
            return
        self.done = True
        s = self.settlement
        paid = []
        for node_id, amount, fee in parts:
            if amount > 0:
                paid.append(PaidPart(node_id, s.payee(node_id), amount, fee))
        if not paid:
            s.void(self.key, self.payer)
            return
        op = Answer(self.key, self.payer, self.model, self.estimate, tuple(paid), receipt_hash)
        self.written = True  # queued at the call's first step; shielded from a cancellation
        try:
            await s.answer(op)
        except Exception:  # the answer goes out anyway; the request stays pending (voided)
            log.exception("settlement: could not record the answer of %s", self.key)

    def void(self) -> None:
        if not self.done:
            self.done = True
            self.settlement.void(self.key, self.payer)

    # the admission's Hold: a request that ends without being paid costs nothing
    def release(self, response: Response | None) -> None:
        # a non-stream ended (with an answer, or raising: None), or a stream refused before
        # it opened; an open stream (None) is paid when it ends. Until 2026-12-03 a
        # non-stream that raised (not a refusal) kept its reservation until the process
        # stopped: None was taken for an open stream's
        if response is not None or not self.stream:
            self.void()

    def abandon(self) -> None:
        self.void()

    async def settled(self) -> None:
        """Nothing to wait for before the answer goes out (the void is queued)."""


def _refusal(job: Job, payer: str, seen: Reserved) -> PaymentRequired:
    amounts: dict[str, Any] = {
        "estimate": job.estimate, "balance": seen.balance, "reserved": seen.reserved,
        "available": seen.available, "unit": "micro-NetworkToken",
    }  # fmt: skip
    why = (
        f"this request may cost up to {job.estimate:,} micro-NetworkTokens (its prompt "
        f"estimate plus max_tokens={job.max_tokens or 'the rest of the context'}"
        f"{f' for each of n={job.choices} choices' if job.choices > 1 else ''} at "
        f"{job.model}'s prices)"
    )
    # "Lower max_tokens" only where a lower one could fit: found 2026-12-07 (money41), said
    # to a prompt whose estimate alone, at max_tokens=1, was more than what is available
    least = estimate(job.price, job.prompt_text, 1, 1, job.messages, job.choices)
    lower = (
        "Lower max_tokens"
        if least <= seen.available
        else f"Even max_tokens=1 may cost {least:,} (the prompt's estimate, one token a UTF-8 "
        "byte): shorten the prompt"
    )
    if payer == POOL:
        return PoolExhausted(
            f"the community pool that pays for requests without an API key is dry: {why}, "
            f"and it has {max(0, seen.available):,} available (balance {seen.balance:,}, "
            f"{seen.reserved:,} held by requests in flight and gateways' leases); it is "
            f"topped up to its daily budget at 00:00 UTC. {lower}, or use an API key "
            "with a balance",
            payer="pool", **amounts,
        )  # fmt: skip
    return PaymentRequired(
        f"insufficient balance: {why}, and your available balance is "
        f"{max(0, seen.available):,} (balance {seen.balance:,}, {seen.reserved:,} held by "
        "your requests in flight and the gateways' reservation leases, which go back after "
        f"a second unused). {lower}, or ask the registry's admin for a "
        "grant (llm-mesh registry grant)",
        payer="user", **amounts,
    )  # fmt: skip


def _custom_refusal(job: Job) -> PoolPaysCatalogOnly:
    """An anonymous request for a custom model: the pool pays for catalog models only.
    Found 2026-12-06 (``money33``): an operator whose node alone serves a custom model (no
    catalog entry, so no canary checks its answers: it may answer anything) sent it
    anonymous requests and was paid the pool's daily budget, less the fee, for them.
    Loopback clients are not refused (as the anonymous limits do not count them): on
    ``llm-mesh up`` with a model file of one's own the node's operator is the only user,
    and the registry, its pool included, its own."""
    return PoolPaysCatalogOnly(
        f"{job.model!r} is a custom model (in no catalog: its answers cannot be checked), and "
        "the community pool that pays for requests without an API key pays for catalog "
        "models only; send it with an API key with a balance (its user pays), or ask for a "
        "catalog model (GET /v1/models)",
        payer="pool", model=job.model,
    )  # fmt: skip


class Charge:
    """The admission check (see the module docstring)."""

    __slots__ = ("settlement",)

    def __init__(self, settlement: Settlement) -> None:
        self.settlement = settlement

    async def __call__(self, job: Job, client: Client) -> SettledPayment:
        s = self.settlement
        payer = POOL if client.key is None else user_account(client.key.key_id)
        if payer == POOL and job.catalog_context is None and not exempt(client.address):
            raise _custom_refusal(job)  # (this machine's own clients: llm-mesh up's user)
        seen = await self._reserve(job, payer)
        if not seen.ok and payer == POOL and await s.top_up_pool():
            seen = await self._reserve(job, payer)  # a new day's budget
        if not seen.ok:
            raise _refusal(job, payer, seen)
        payment = SettledPayment(
            s, job.settle_key, payer, job.model, job.estimate, stream=job.stream
        )
        client.payment = payment
        return payment

    async def _reserve(self, job: Job, payer: str) -> Reserved:
        try:
            return await self.settlement.reserve(job.settle_key, payer, job.model, job.estimate)
        except Exception as exc:
            # the store's trouble at DEBUG: the settlement writer's line said it (newuser42:
            # a traceback a request); anything else an ERROR with its traceback
            what = f"settlement: could not reserve for {job.settle_key}"
            log_failed_round(log, exc, what, quiet=True)
            raise SettlementUnavailable(
                "the request's price could not be reserved (settlement database unavailable); "
                "nothing was run: try again",
                retry_after=1,
            ) from exc
