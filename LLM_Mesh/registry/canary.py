"""Canary probes: ask a node what a verifier answers, compare, quarantine a liar.

A probe is an ordinary request as a client would send it, and goes through the
gateway's own stages as an anonymous request pinned to the node (``allow_nodes``):
parsed and priced from the catalog (the parse stage), its estimate reserved from the
community ``pool`` (what pays every request without an API key; a keyed-class probe's
from a probe account where one covers it, below), sent by the send
stage (``POST /v1/completions`` with the gateway's signature, a fresh ``X-Request-Id``,
the same pooled client; as often as the model's anonymous requests here carry their
client's own id, a client-like one of its own, :meth:`CanaryProber.named`, so its ledger
key is a named user's ``c-…``), its ``mesh`` and countersigned receipt made and its parts
paid by the account stage, its record and metrics written as any request's. So the
node is paid exactly as for a user's anonymous request (``settle`` and ``fee``
entries, or ``hold`` while it is quarantined: ``registry/held.py``), with the same
receipt, and nothing in the payment, not even the public ledger afterwards, tells a
probe from a user's anonymous request. Nor does the class it tells the node (``mesh_priority``:
keyed requests wait first, ``core/priority.py``): a probe carries the keyed class as often
as the model's requests here are keyed (:meth:`CanaryProber.keyed`,
``core/priority_mix.py``), so a node cannot answer keyed requests with a cheaper model and
anonymous ones honestly (it would be, were every probe ordinary). A keyed-class probe is
paid as a keyed user's request is, from a ``user:`` account: one of the probe accounts
(``Pseudonyms.probe``, keyed by the ledger's secret, so nobody tells them from users' or
ties them to the pool), drawn per probe among those that cover it, which the admin funds
as users' accounts are funded, by a grant from the mint (``llm-mesh registry grant
probe:N``); with its client's own id as often as keyed requests carry one, its key
unscoped as a keyed user's. Where none covers it (none granted: the default) the pool
pays, and the public ledger afterwards tells the node a keyed request paid by the pool
was a probe (docs/security.md, probes' tell (h)). The verifier's reference is asked (and
paid) the same way.
A probe the pool cannot pay for (dry until its next daily top-up) is not sent: no
verdict. The body is a prompt from the pool (``core/canary_prompts.py``),
``temperature: 0`` (greedy) or, on a share, a user-like temperature (judged by
``core/canary_sampled.py``, and across probes by ``core/canary_departures.py``: how often
the node left the arg max), in a shape drawn per probe (``core/canary_shape.py``):
completion or chat, streamed or not, ``max_tokens``, ``logprobs``, optional no-op
fields, key order and spacing as real clients write them. A streamed probe is read
through the gateway's stream stages (``NodeStream``, ``SseRelay``, ``StreamAccount``:
paid and recorded as a user's stream) and judged on its text alone, as is a non-streamed
one that asks no ``logprobs`` (``Shape.text_only``).

The reference is the same body answered by a verifier: a node the admin marked
trusted for that model file (``llm-mesh registry nodes trust``: model and sha256) hosting
it. It is fetched on demand, after the probed node has answered (asked before, a
verifier saw each new probe coming), and cached per (sha256, verifier, its mark's time,
endpoint, body): one unmarked since is not asked, nor are its answers used (review43), nor,
marked again, are the answers it gave under its earlier mark (verifier44). Where no other
verifier hosts that file, the probe's verdict is ``unverified``: nobody is flagged.
The reference is asked in one fixed form per endpoint (not streamed, the longest
``max_tokens`` of the mix, 5 candidates) with the probe's messages (system message,
earlier exchanges) and sampling fields (``seed``, penalties, ``stop``), and cut to the
probe's length; the cache keeps the newest ``max_references``.
The answer is judged by ``core/canary.py``, its ``usage`` by ``core/canary_usage.py``
(:func:`probe_counts`: the completion count held to the answer's log-probability entries,
a stream's to the reference's entries for its text, the prompt count to the verifier's
for the same messages, kept with the cached reference); a failure of either quarantines
the node for that model (``registry/quality.py``), the verdict naming the count.

``CanaryScheduler`` (``registry/canary_scheduler.py``) probes in the background within the
budget of ``core/probe_budget.py``; ``POST /mesh/canary/run`` (admin) runs a round now.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from starlette.datastructures import Headers

from LLM_Mesh.core.canary import (
    DEFAULT_RULE,
    Answer,
    Rule,
    Verdict,
    answer_from_openai,
    compare,
    compare_text,
    judged_part,
    truncated,
)
from LLM_Mesh.core.canary_departures import Departures, Evidence, counted, probe_evidence
from LLM_Mesh.core.canary_fresh import DEFAULT_FRESH_SHARE, FreshTurns, fresh_prompt
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_sampled import compare_sampled
from LLM_Mesh.core.canary_sampled_text import compare_sampled_text, text_evidence
from LLM_Mesh.core.canary_shape import (
    DEFAULT_MIX,
    Mix,
    Shape,
    choose,
    reference_shape,
    render,
    stops,
)
from LLM_Mesh.core.canary_usage import StatedUsage
from LLM_Mesh.core.ledger_entry import POOL, PROBE_ACCOUNTS
from LLM_Mesh.core.priority_mix import probe_keyed
from LLM_Mesh.core.probe_ids import client_like_id
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.account import (
    StreamAccount,
    account_answer,
    account_failure,
    account_passthrough,
    pay,
)
from LLM_Mesh.registry.admit import ScopeAnonymousIds
from LLM_Mesh.registry.canary_answers import (  # here too: tests and tools import them from here
    ProbeError,
    ProbeResult,
    probe_counts,
    probe_error,
    record_verdict,
    stream_answer,
    stream_text,
)
from LLM_Mesh.registry.charge import SettledPayment
from LLM_Mesh.registry.extensions import Extensions
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.parse import build_job
from LLM_Mesh.registry.quality import Quality
from LLM_Mesh.registry.relay import SseRelay, asks_usage
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.send import Exchange
from LLM_Mesh.registry.send_stream import NodeStream

__all__ = [
    "PATH",
    "UNMARKED_MIDWAY",
    "CanaryProber",
    "ProbeError",
    "ProbeResult",
    "probe_counts",
    "stream_answer",
    "stream_text",
]

log = logging.getLogger(__name__)

PATH = "/v1/completions"
PROBE_ADDRESS = "canary"  # the Client address probes are counted under (never rate limited)
#: a probe's verdict when its verifier was unmarked, or left the file, before its reference
#: was in (attack45): no verifier judged the answer
UNMARKED_MIDWAY = (
    "its verifier was unmarked, or serves another file now, since the probe began: no verdict"
)


@dataclass
class CanaryProber:
    rt: Runtime
    quality: Quality
    rule: Rule = DEFAULT_RULE
    prompts: Sequence[str] = PROMPTS
    mix: Mix = DEFAULT_MIX
    rng: random.Random = field(default_factory=random.SystemRandom)  # its draws show in probes
    references: dict[tuple[str, str, str, str], Answer] = field(default_factory=dict)
    random16: Callable[[], bytes] = field(default=lambda: os.urandom(16))
    """16 random bytes for a client-like request id (not the seeded ``rng``'s)."""
    max_references: int = 4096
    """Cached references kept (the oldest dropped first): a multi-turn probe's messages or
    its sampling fields make a reference of their own, so the keys do not stop growing."""
    dry_accounts: bool = False
    """No probe account covered the last keyed-class probe (its warning said once)."""
    departures: Departures = field(default_factory=Departures)
    """How often each node left the arg max on sampled probes (``core/canary_departures``),
    forgotten when the admin clears the node; the store's with ``shared`` (the app's
    ``canary_departures_sync.DepartureSync``: kept over a restart, shared by replicas)."""
    shared: Any = None
    fresh_share: float = DEFAULT_FRESH_SHARE
    """The share of drawn probes whose prompt is made fresh (``core/canary_fresh.py``: never
    sent before, so no node remembers it); its reference is asked anew and not cached."""

    def __post_init__(self) -> None:
        self.quality.cleared.append(self.departures.forget)
        self.quality.lifted.append(partial(self.departures.forget, stored=False))

    def draw_prompt(self) -> tuple[str, bool]:
        """A probe's prompt and whether it is fresh (on ``fresh_share`` of draws)."""
        if self.fresh_share > 0 and self.rng.random() < self.fresh_share:
            return fresh_prompt(self.rng), True
        return self.rng.choice(list(self.prompts)), False

    def history_pool(self, fresh: bool) -> Sequence[str]:
        """The prompts a multi-turn chat probe's earlier user turns are drawn from: the
        pool's, or for a fresh probe fresh ones (found 2026-12-06, review36: drawn from the
        pool, by default public, they told a node keeping the list that a fresh chat probe
        was a probe, about one in seven)."""
        return FreshTurns(self.rng) if fresh else self.prompts

    def body(self, model: str, prompt: str, shape: Shape | None = None) -> bytes:
        """A probe's body for ``shape`` (default: the reference's form of a completion)."""
        return render(shape or reference_shape(Shape(), self.mix), model, prompt)

    async def ask(
        self, node_id: str, model: str, raw: bytes, prompt: str, path: str = PATH
    ) -> dict[str, Any]:
        """Send ``raw`` to ``node_id`` through the gateway's stages as a request pinned to
        the node (see the module docstring); its JSON answer, paid for."""
        job, client, keyed = await self._job(node_id, raw, path)
        rt = self.rt
        ex = Exchange(rt, job, keyed)
        try:
            answer = await ex.complete()
        except MeshError as exc:
            account_failure(rt, job, client, exc)
            raise ProbeError(probe_error(exc)) from exc
        if answer.data is None:
            account_passthrough(rt, job, client, answer.node_id, answer.status, answer.content,
                                ex.tally.attempts)  # fmt: skip
            raise ProbeError(f"HTTP {answer.status}")
        account_answer(rt, job, ex.tally, answer.data, client.payment)
        await pay(job, ex.tally, client)
        return answer.data

    async def ask_stream(
        self, node_id: str, raw: bytes, path: str = PATH
    ) -> tuple[str, StatedUsage | None]:
        """Send a streamed ``raw`` as :meth:`ask` does, through the gateway's stream stages
        (as ``Pipeline._stream``: paid and recorded as a user's stream); the text it spelled
        and the counts its ``usage`` stated (the relay always passes the node's on).

        Its opening mirrors ``Pipeline._stream``'s (the accounting of a failure or a refusal
        is shared: ``account_failure``, ``account_passthrough``); one shared opening would
        cost every streamed request a coroutine of its own (an await and its frame)."""
        job, client, keyed = await self._job(node_id, raw, path)
        rt = self.rt
        ex = Exchange(rt, job, keyed)
        upstream = NodeStream(ex)
        try:
            answer = await upstream.open()
        except MeshError as exc:
            account_failure(rt, job, client, exc)
            raise ProbeError(probe_error(exc)) from exc
        if answer.status != 200:
            account_passthrough(rt, job, client, answer.node_id, answer.status, answer.content,
                                ex.tally.attempts)  # fmt: skip
            raise ProbeError(f"HTTP {answer.status}")
        acct = StreamAccount(rt, job, ex.tally, client)
        relay = SseRelay(
            upstream.events(),
            acct.finalize,
            on_error=acct.finalize_error,
            commit=acct.commit,
            usage_chunk=asks_usage(job.body),
        )
        sse = bytearray()
        events = relay.events()
        try:
            async for chunk in events:
                sse += chunk
        finally:
            await events.aclose()
            await upstream.close()
            await acct.close()
        return stream_answer(bytes(sse))

    def keyed(self, model: str) -> bool:
        """The class the probe carries to the node (``core/priority_mix.py``): keyed as
        often as the model's requests here are; drawn only when both classes come."""
        return self._drawn(self.rt.traffic.keyed_share(model))

    def named(self, model: str, keyed: bool = False) -> bool:
        """Whether the probe carries a client's own request id (``core/priority_mix.py``):
        as often as the model's anonymous (``keyed``: keyed) requests here do; drawn only
        when some do and some do not."""
        return self._drawn(self.rt.traffic.named_share(model, keyed))

    def _drawn(self, share: float) -> bool:
        if share <= 0.0 or share >= 1.0:
            return share >= 1.0
        return probe_keyed(share, self.rng.random())

    def client_headers(self) -> Headers:
        """A client's own request id, drawn as clients draw theirs (``core/probe_ids.py``)."""
        name, value = client_like_id(self.rng.random(), self.random16())
        return Headers({name: value})

    async def _job(self, node_id: str, raw: bytes, path: str) -> tuple[Job, Client, bool]:
        """The probe's job pinned to ``node_id``, its payment reserved, and its class:
        keyed (paid from a probe account, else the pool) or not (the pool)."""
        rt = self.rt
        if rt.table.get(node_id) is None:
            raise ProbeError(f"node {node_id} is not known")
        client = Client(PROBE_ADDRESS)
        try:
            job = build_job(rt, Headers(), raw, path, rt.clock())
            keyed = self.keyed(job.model)
            if self.named(job.model, keyed):  # its ledger key is c-…, as a user's that named it
                job = build_job(rt, self.client_headers(), raw, path, rt.clock())
        except MeshError as exc:
            raise ProbeError(f"the probe is not a valid request: {exc}") from exc
        # pinned: a node that may keep prompts is probed too (the probes' prompts are public)
        job = replace(
            job, ext=Extensions(allow_nodes=frozenset({node_id}), allow_prompt_keeping=True)
        )
        client.payment = await self._from_probe_account(job) if keyed else None
        if client.payment is None:
            if job.client_id is not None and rt.paid_ids is not None:  # a lone registry's
                try:  # scoped tag, as admit.py makes an anonymous user's
                    job = await ScopeAnonymousIds(rt.paid_ids)(job, client) or job
                except MeshError as exc:
                    raise ProbeError(f"settlement unavailable: {exc}") from exc
            client.payment = await self._reserve(job)
        return job, client, keyed

    async def _from_probe_account(self, job: Job) -> SettledPayment | None:
        """A keyed-class probe's estimate reserved from a probe account (``Pseudonyms.probe``:
        a ``user:`` account, granted by the admin as a user's is, ``registry grant
        probe:N``), the first of them in a drawn order that covers it; ``None`` (the pool
        pays, docs/security.md tell (h)) when settlement is off or none covers it."""
        s = self.rt.settlement
        if s is None or s.accounts is None:
            return None
        order = list(range(1, PROBE_ACCOUNTS + 1))
        self.rng.shuffle(order)
        for index in order:
            payer = s.accounts.probe(index)
            try:
                seen = await s.reserve(job.settle_key, payer, job.model, job.estimate)
            except Exception as exc:
                raise ProbeError(f"settlement unavailable: {exc}") from exc
            if seen.ok:
                self.dry_accounts = False
                return SettledPayment(s, job.settle_key, payer, job.model, job.estimate)
        if not self.dry_accounts:  # said once until an account pays again
            self.dry_accounts = True
            log.warning(
                "canary: no probe account covers a keyed-class probe's %d µNT: the pool pays "
                "it, which the public ledger shows a node (docs/security.md, probes' tell "
                "(h)); grant them: llm-mesh registry grant probe:1 … probe:%d AMOUNT",
                job.estimate, PROBE_ACCOUNTS,
            )  # fmt: skip
        return None

    async def _reserve(self, job: Job) -> SettledPayment | None:
        """The probe's estimate reserved from the pool, as for an anonymous request (a new
        UTC day's top-up first if it is dry); ``None`` when settlement is off."""
        s = self.rt.settlement
        if s is None:
            return None
        try:
            seen = await s.reserve(job.settle_key, POOL, job.model, job.estimate)
            if not seen.ok and await s.top_up_pool():
                seen = await s.reserve(job.settle_key, POOL, job.model, job.estimate)
        except Exception as exc:
            raise ProbeError(f"settlement unavailable: {exc}") from exc
        if not seen.ok:
            raise ProbeError(
                f"not sent: the community pool cannot pay for it ({seen.available} µNT "
                f"available, {job.estimate} needed)"
            )
        return SettledPayment(s, job.settle_key, POOL, job.model, job.estimate)

    def verifiers_for(self, node_id: str, model: str) -> list[str]:
        """Healthy verifiers (other than ``node_id``) hosting the same file as ``node_id``,
        each marked for that file (``Quality.vouches``; found 2026-12-07, verifier43: any
        model a verifier declared, one the admin never checked, too)."""
        hosted = self.rt.table.hosted(node_id, model)
        if hosted is None or not hosted.sha256:
            return []
        return self._verifiers_of(model, hosted.sha256, node_id)

    def _verifiers_of(self, model: str, sha256: str, node_id: str) -> list[str]:
        """Healthy verifiers other than ``node_id`` serving ``model``'s file ``sha256``, each
        marked for it (:meth:`verifiers_for`'s, for the file the probed node declared)."""
        table = self.rt.table
        out = []
        for v in sorted(self.quality.verifiers):
            entry, vh = table.get(v), table.hosted(v, model)
            if v == node_id or entry is None or vh is None or vh.sha256 != sha256:
                continue
            if self.quality.vouches(v, model, vh.sha256) and table.healthy(entry):
                out.append(v)
        return out

    def _still_vouching(self, verifier: str, model: str, sha256: str, node_id: str) -> str | None:
        """``verifier`` if it is still marked for the file and serves it, else another that
        is (``None``: none): the marks and registrations read again after an await (found
        2026-12-07, attack45: a verifier the admin unmarked, or that switched files, while
        the node answered was still asked, and its answer quarantined an honest node)."""
        now = self._verifiers_of(model, sha256, node_id)
        return verifier if verifier in now else (now[0] if now else None)

    async def reference(
        self,
        verifier: str,
        model: str,
        sha256: str,
        prompt: str,
        shape: Shape | None = None,
        keep: bool = True,
    ) -> Answer:
        """The verifier's answer in the reference form of ``shape``'s endpoint (cached;
        ``keep=False``: a fresh prompt's, never asked again, is not kept)."""
        ref_shape = reference_shape(shape or Shape(), self.mix)
        raw = render(ref_shape, model, prompt)
        # the verifier's own (review43), under its mark (verifier44): answers it gave before
        # it was unmarked are no reference once it is marked again
        mark = self.quality.mark_of(verifier, model)
        digest = hashlib.sha256(ref_shape.path.encode() + b"\0" + raw).hexdigest()
        key = (sha256, verifier, mark.isoformat() if mark is not None else "", digest)
        ref = self.references.get(key)
        if ref is None:
            ref = answer_from_openai(await self.ask(verifier, model, raw, prompt, ref_shape.path))
            if not ref.tokens:
                raise ProbeError(f"verifier {verifier} gave no log-probabilities")
            while keep and len(self.references) >= max(1, self.max_references):
                del self.references[next(iter(self.references))]
            if keep:
                self.references[key] = ref
        return ref

    async def probe(
        self, node_id: str, model: str, prompt: str | None = None, shape: Shape | None = None
    ) -> ProbeResult:
        """One probe of ``node_id`` for ``model`` in a drawn shape; a failure quarantines it.
        ``simulated``: the node registered the model on a simulated engine (as ``GET
        /mesh/nodes`` shows it), read before the probe."""
        hosted = self.rt.table.hosted(node_id, model)
        simulated = hosted is not None and hosted.simulated
        result = await self._probe(node_id, model, prompt, shape)
        return replace(result, simulated=True) if simulated else result

    async def _probe(
        self, node_id: str, model: str, prompt: str | None, shape: Shape | None
    ) -> ProbeResult:
        prompt, fresh = (prompt, False) if prompt is not None else self.draw_prompt()
        if shape is None:  # a fresh probe's earlier chat turns fresh too (review36)
            shape = choose(self.rng, self.mix, self.history_pool(fresh))
        verifiers = self.verifiers_for(node_id, model)
        if not verifiers:
            hosted = self.rt.table.hosted(node_id, model)
            why = (
                # found 2026-12-05: a sim node beside a trusted sim verifier read "no
                # verifier hosts this file", as if trusting one would help
                "the node declares no sha256 for this file (a simulated engine, or a file "
                "it did not hash): no verifier can be matched to it"
                if hosted is None or not hosted.sha256
                else "no other verifier hosts this file (a verifier is not checked against itself)"
                # marked for this file; one it is not marked for no verifier hosts (review43)
                if self.quality.vouches(node_id, model, hosted.sha256)
                # what makes one, said (newuser45: an admin's first `canary run`)
                else "no verifier hosts this file: mark a node you trust that serves it as one "
                "(`llm-mesh registry nodes trust NODE_ID`)"
            )
            return ProbeResult(node_id, model, "unverified", why, prompt)
        hosted = self.rt.table.hosted(node_id, model)
        sha = hosted.sha256 if hosted is not None and hosted.sha256 else ""
        verifier = verifiers[0]
        raw = render(shape, model, prompt)
        # the node first, the verifier after (tell (e)): a reference not yet cached is asked
        # once the node has answered, so a verifier (its operator) never sees a probe coming
        text: str | None = None
        got: Answer | None = None
        streamed_usage: StatedUsage | None = None
        try:
            if shape.stream:
                text, streamed_usage = await self.ask_stream(node_id, raw, shape.path)
            else:
                got = answer_from_openai(await self.ask(node_id, model, raw, prompt, shape.path))
                if not shape.logprobs:  # none asked: its text alone, as a stream's (probe33)
                    text, streamed_usage, got = got.text, got.usage, None
        except ProbeError as exc:
            # no answer is no verdict (the node may be busy); failures count in its score
            return ProbeResult(node_id, model, "error", str(exc), prompt, verifier)
        chosen = self._still_vouching(verifier, model, sha, node_id)  # read again (attack45)
        if chosen is None:
            return ProbeResult(node_id, model, "unverified", UNMARKED_MIDWAY, prompt, verifier)
        verifier = chosen
        try:
            whole = await self.reference(verifier, model, sha, prompt, shape, keep=not fresh)
        except ProbeError as exc:
            return ProbeResult(node_id, model, "error", f"verifier: {exc}", prompt, verifier)
        if self._still_vouching(verifier, model, sha, node_id) != verifier:  # while it answered
            return ProbeResult(node_id, model, "unverified", UNMARKED_MIDWAY, prompt, verifier)
        ref = truncated(whole, shape.max_tokens)
        v: Verdict
        test, temperature = self.departures.test, shape.temperature
        ev: Evidence | None = None
        if got is None and shape.sampled:  # text only: the reference's numbers (probe32)
            v = compare_sampled_text(ref, text or "", self.rule, temperature=temperature)
            ev = text_evidence(ref, text or "", temperature, test, stops(shape), shape.chat)
        elif got is None:
            v = compare_text(ref, text or "", self.rule, stops(shape))
        else:
            part = judged_part(got, ref, self.mix.max_tokens)
            if shape.sampled:  # at the temperature it sent (core/canary_sampled.tempered_most)
                v = compare_sampled(ref, part, self.rule, stops(shape), temperature=temperature)
                ev = probe_evidence(ref, part, temperature, test)
            else:
                v = compare(ref, part, self.rule, stops(shape))
        flag = None
        if ev is not None and v.ok and counted(shape):  # across probes: how often it left
            flag = self.departures.add_probe(node_id, model, ev, shape)
        if flag is not None:
            v = Verdict(False, flag.describe(test))
        counts = probe_counts(got, text, streamed_usage, whole, ref, shape, self.rule)
        if v.ok and counts is not None:  # the text is the model's, its count is not
            rec = await self.quality.record(
                node_id, model, ok=False, reason=f"canary: {counts.describe()}"
            )
            return ProbeResult(node_id, model, "fail", counts.describe(), prompt, verifier,
                               rec.quarantined)  # fmt: skip
        if v.reason == "no_sure_tokens":  # a text whose reference starts at a near tie
            why = (  # or whose stop string ended it at once
                "text only: the reference's first token is a near tie or the probe's stop, "
                "nothing to compare"
            )
            return ProbeResult(node_id, model, "unverified", why, prompt, verifier)
        rec = await record_verdict(self.quality, self.shared, node_id, model, v, flag)
        return ProbeResult(
            node_id, model, "pass" if v.ok else "fail", v.describe(), prompt, verifier,
            rec.quarantined,
        )  # fmt: skip

    def targets(self, node: str | None = None, model: str | None = None) -> list[tuple[str, str]]:
        """(node, model) pairs to probe: healthy nodes, models not quarantined."""
        out = []
        for e in sorted(self.rt.table.entries(), key=lambda e: e.node_id):
            if node is not None and e.node_id != node:
                continue
            if not self.rt.table.healthy(e):
                continue
            for m in sorted(e.models):
                if model is not None and m != model:
                    continue
                if not self.quality.quarantined(e.node_id, m):
                    out.append((e.node_id, m))
        return out

    async def run_round(
        self, node: str | None = None, model: str | None = None
    ) -> list[ProbeResult]:
        """One probe of every target now (``llm-mesh registry canary run``)."""
        return [await self.probe(n, m) for n, m in self.targets(node, model)]
