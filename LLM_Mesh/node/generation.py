"""One admitted generation: its admission slot, cancel flag, timings and usage.

:meth:`Generation.open` takes a slot in the admission queue and waits for the
engine's first delta, so every early failure (queue full, node paused, context
too long, engine down) raises *before* the HTTP layer commits to a status code
or starts a stream. The engine's deltas come in batches
(:meth:`~LLM_Mesh.node.engines.base.Engine.stream_batches`: those ready together);
:meth:`Generation.batches` passes them on as such (the SSE writer sends a batch in
one write), :meth:`Generation.deltas` one by one. :meth:`Generation.close` is idempotent: it sets the cancel
flag (the engine stops at its next token), gives the slot back and counts the
request.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.canary import TokenLogprob
from LLM_Mesh.core.prompt_count import HDR_PROMPT_SIGNATURE, HDR_PROMPT_TOKENS, claim_header
from LLM_Mesh.core.schemas import MeshMeta
from LLM_Mesh.node.engines.base import Delta, GenerationRequest, Usage

if TYPE_CHECKING:
    from LLM_Mesh.node.service import NodeService


class Generation:
    """Drive one request through the engine while holding an admission slot."""

    def __init__(self, service: NodeService, req: GenerationRequest, request_id: str | None):
        self.service = service
        self.req = req
        self.request_id = request_id
        self.cancel = threading.Event()
        self.started_at = service.clock()
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.parts: list[str] = []
        self.tokens_seen = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        # the prompt's count as the engine said it before its first token (Delta.prompt_tokens)
        self.early_prompt_tokens: int | None = None
        self.logprobs: tuple[TokenLogprob, ...] | None = None
        self._agen: AsyncIterator[list[Delta]] | None = None
        self._first: list[Delta] | None = None
        self._holding = False
        self._slot_taken: float | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        service: NodeService,
        req: GenerationRequest,
        request_id: str | None = None,
        cancel: threading.Event | None = None,
        keyed: bool = False,
    ) -> Generation:
        """Admit the request and wait for its first delta (errors raise here).

        ``cancel``: its cancel flag, for a caller that sets it when the client leaves
        before the first delta (then counted cancelled, not failed); ``keyed``: the
        gateway said it is keyed (``core/priority.py``: it waits before ordinary ones)."""
        gen = cls(service, req, request_id)
        if cancel is not None:
            gen.cancel = cancel
        service.refresh_availability()
        gen._slot_taken = await service.admission.acquire(keyed=keyed)
        gen._holding = True
        try:
            gen._agen = service.engine.stream_batches(req, gen.cancel)
            try:
                first = await gen._agen.__anext__()
            except StopAsyncIteration:
                first = None
        except BaseException:
            gen.close(ok=False)
            raise
        if first:
            gen._first = first
            for delta in first:
                gen._note(delta)
        return gen

    def _note(self, delta: Delta) -> None:
        if delta.prompt_tokens is not None and self.early_prompt_tokens is None:
            self.early_prompt_tokens = delta.prompt_tokens
        if delta.text:
            if self.first_token_at is None:
                self.first_token_at = self.service.clock()
            self.parts.append(delta.text)
            self.tokens_seen += 1
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.logprobs is not None:
            self.logprobs = delta.logprobs
        if delta.usage is not None:
            self.usage = delta.usage
            self.ended_at = self.service.clock()

    def said_headers(self) -> dict[str, str]:
        """The headers a stream's answer opens with: the prompt's count when the engine said
        it before its first token (:data:`HDR_PROMPT_TOKENS`, ``core/prompt_count.py``: what
        the gateway charges a stream its client cuts before the final chunk), and, for a
        request the gateway named (``X-Request-Id``), its receipt key's signature of that
        count (:data:`HDR_PROMPT_SIGNATURE`: the gateway believes no count unsigned; since
        2026-12-06, money36)."""
        said = self.early_prompt_tokens
        if said is None:
            return {}
        headers = {HDR_PROMPT_TOKENS: str(said)}
        if self.request_id:
            signer = self.service.receipts
            signature = signer.sign_prompt_count(
                registry_id=self.service.gateway.registry_id or "",
                request_id=self.request_id,
                model=self.req.model,
                prompt_tokens=said,
            )
            headers[HDR_PROMPT_SIGNATURE] = claim_header(signer.node_key, signature)
        return headers

    async def batches(self) -> AsyncIterator[list[Delta]]:
        """The deltas in the engine's batches: the first (already received), then the rest."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        if self._agen is None:
            return
        async for batch in self._agen:
            for delta in batch:
                self._note(delta)
            yield batch

    async def deltas(self) -> AsyncIterator[Delta]:
        """The deltas one by one."""
        async for batch in self.batches():
            for delta in batch:
                yield delta

    async def collect(self) -> str:
        """Run to the end; the whole text."""
        async for _ in self.deltas():
            pass
        return self.text

    @property
    def admission_wait_s(self) -> float | None:
        """How long it waited for its admission slot (``None``: it got none)."""
        if self._slot_taken is None:
            return None
        return max(0.0, self._slot_taken - self.started_at)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def close(self, *, ok: bool) -> None:
        """Stop the engine (if still going), free the slot, count the request."""
        if self._closed:
            return
        self._closed = True
        gone = self.cancel.is_set()  # set before the end: the client (or gateway) hung up
        self.cancel.set()
        if self.ended_at is None:
            self.ended_at = self.service.clock()
        done = ok and self.finished
        if self._holding:
            self._holding = False
            # a finished request's slot time is a service-time sample (the 429's Retry-After)
            self.service.admission.release(self._slot_taken, sample=done)
        self.service.record(self.usage, ok=done, cancelled=gone, tokens_seen=self.tokens_seen)
        if done:  # what it measured, for /mesh/info (core/measured_speed.py: enough tokens)
            ttft_s, tps = self._speed(self.ended_at)
            completion = self.final_usage().completion_tokens
            self.service.speeds.observe(self.req.model, completion, tps, ttft_s * 1000)

    async def aclose(self, *, ok: bool) -> None:
        self.close(ok=ok)
        agen, self._agen = self._agen, None
        closer = getattr(agen, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(0, self.tokens_seen)

    def receipt(self, output: str, answer_id: str) -> dict[str, Any]:
        """The node's signed receipt of this answer (``core/receipt.py``): the request id
        (the gateway's ``X-Request-Id``, else the answer's id), the model, the usage and the
        SHA-256 of ``output``, the text the answer carries; for the gateway it answered."""
        usage = self.final_usage()
        service = self.service
        return service.receipts.sign(
            registry_id=service.gateway.registry_id or "",
            request_id=self.request_id or answer_id,
            model=self.req.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            output_sha256=output_sha256(output),
        )

    def _speed(self, end: float) -> tuple[float, float | None]:
        """Time to first token (s) and decode tokens/s (None: no decode time, or one token
        or none: found 2026-12-07, a 1-token answer said 19,914 tok/s, its one token over the
        microseconds to the end), to ``end``: what the answer's ``mesh`` says and the node's
        measured speed counts."""
        first = self.first_token_at if self.first_token_at is not None else end
        ttft_s = max(0.0, first - self.started_at)
        completion = self.final_usage().completion_tokens
        gen_s = max(0.0, end - first)
        return ttft_s, completion / gen_s if gen_s > 0 and completion > 1 else None

    def mesh(self, receipt: dict[str, Any] | None = None) -> MeshMeta:
        end = self.ended_at if self.ended_at is not None else self.service.clock()
        latency_s = max(0.0, end - self.started_at)
        ttft_s, tps = self._speed(end)
        usage = self.final_usage()
        engine = self.service.engine
        return MeshMeta(
            node_id=self.service.node_id,
            model=self.req.model,
            engine=engine.name,
            simulated=engine.simulated,
            request_id=self.request_id,
            latency_ms=round(latency_s * 1000, 3),
            ttft_ms=round(ttft_s * 1000, 3),
            tokens_per_s=round(tps, 3) if tps is not None else None,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=0,
            receipt=receipt,
        )
