"""One node's part of a client stream: its SSE events read, checked, bounded and tallied.

Events come in batches: those read from the node together (one per read while the
gateway keeps up), which the relay writes to the client in one go. The node's bytes are
framed into events as bytes (:mod:`~LLM_Mesh.core.sse_frame`: an event the gateway need
not change goes to the client as read, this runs per token; an event past
:data:`~LLM_Mesh.core.sse_frame.MAX_EVENT_BYTES` breaks the stream). Each data line is
parsed once, strictly (:mod:`~LLM_Mesh.core.strict_json`): one that is not a JSON
object, or holds ``NaN``, ``Infinity`` or a number past a float's range, breaks the stream
like a cut (so the client only ever gets JSON); the parsed object is kept (for the relay)
only until the node's first token (the gateway's time to first token) and when the event
carries ``"usage"`` (the node's final chunk). Its choices are looked at once
(:func:`~LLM_Mesh.core.stream_guard.chunk_reading`: the choice check, the text it adds, the
bytes of its output) and those results passed along: to the floor's count, the limit's
count of content chunks, and the text and bytes of the current node's part, gathered as
each data line is kept (a list append), so a failover can rebuild the text so far and the
receipt can hash what was relayed without parsing the lines again when the node's part ends
(its final chunk, a break, the client's leaving); the part goes into ``Tally.outputs``
(``core/receipt.py``). Until 2026-12-05 (``stream32``) the choices were judged twice a
chunk and the data lines parsed again, all in one ``json.loads``, at the part's limit and
at its end: one parse of each line now, and the same text, counts and bytes.

Bounds (:mod:`~LLM_Mesh.core.stream_guard`): a node part past the tokens the request still
allows (``Job.token_limit``; without ``max_tokens`` ``Job.limit_on`` the context its node
declares, read again as each part opens; less those already sent) is cut off at the limit:
nothing of the event past it is relayed, the node's stream is closed, the router hears
``SERVER_ERROR`` and the client's stream ends as a normal one does (a chunk with
``finish_reason: "length"``, the final chunk with ``usage`` and ``mesh``, ``[DONE]``); a
node's ``usage`` past the limit is read as the limit (and is ``SERVER_ERROR`` too). A part past
its events (the limit + 8) with fewer events with output than the limit padded its answer
with empty ones: a break like a cut, continued elsewhere, not that normal end. Per event
this costs a ``len()`` of the part's data lines (kept anyway), an integer compare and the
look at its choices above (an event with output:
:func:`~LLM_Mesh.core.stream_guard.carries_output`'s rule); the content chunks are counted
as they are read, so a part that reaches its limit is judged without parsing its data lines
again. A part slower than the
floor (``Runtime.stream_floor``; only its events with output count:
``core/stream_guard.carries_output``, so a role-only or empty delta is no progress) breaks
like a cut (``TIMEOUT``), checked with one clock
reading per read from the node; the time the relay spends writing to the client is not
counted against the node (a client that reads slowly must not get an honest node ejected),
nor the time its node spent on the mesh's other requests (``Routing.shares``: the
floor holds per node, counting the other replicas' published requests there, each
stream's share bounded: ``core/stream_guard.sharers``), both read only when the part's
floor moment is recomputed.
"""

from __future__ import annotations

import math
from typing import Any

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.answer_text import chunk_finished, output_sha256
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.delivered import chunk_bytes, completion_cap, echo_advance, priced_completion
from LLM_Mesh.core.prompt_count import PromptClaim, believed_at_cut, quiet_s
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.receipt_check import Observed
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES
from LLM_Mesh.core.stream_guard import (
    PADDED,
    chunk_reading,
    overrun,
    slow_at,
    too_many_without_data,
)
from LLM_Mesh.registry.job import usage_counts
from LLM_Mesh.registry.send import Exchange, error_message

__all__ = [
    "DATA",
    "DONE",
    "DONE_EVENT",
    "FAIL",
    "NO_EVENTS",
    "UNBOUNDED",
    "Broken",
    "Event",
    "Overrun",
    "PartReader",
    "TooSlow",
]

DATA, DONE, FAIL = 0, 1, 2


class Event:
    """One SSE event for the relay: the node's bytes of it (its lines without their line
    endings, joined by ``\\n``; not the blank line that ends it), the first data line's
    JSON when this stage parsed it, whether it comes from a continuing node (or was made or
    corrected by this stage: the relay rewrites such an event to the stream's ``id`` and, on
    the final chunk, to the tally's ``usage``); ``DONE`` ends the stream, ``FAIL`` ends it
    with ``error`` (an OpenAI error body)."""

    __slots__ = ("continued", "error", "kind", "obj", "raw")

    def __init__(
        self,
        kind: int,
        raw: bytes = b"",
        obj: dict[str, Any] | None = None,
        continued: bool = False,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.raw = raw
        self.obj = obj
        self.continued = continued
        self.error = error

    @property
    def lines(self) -> list[str]:
        """The event's lines, decoded (for the relay's rewrites)."""
        return self.raw.decode("utf-8", "replace").split("\n")


DONE_EVENT = Event(DONE)
NO_EVENTS: list[Event] = []  # (never appended to)


class Broken(Exception):
    """The node broke off its stream (reason in the message)."""

    outcome = Outcome.SERVER_ERROR


class TooSlow(Broken):
    """The node's stream fell below the floor (``core/stream_guard.py``)."""

    outcome = Outcome.TIMEOUT


class Overrun(Broken):
    """The node went past the tokens the request allows: cut off at the limit."""


UNBOUNDED = 2**62  # a job without a token limit


class PartReader:
    """The current node part's events (``_events``) and its state, for
    :class:`~LLM_Mesh.registry.send_stream.NodeStream`: see the module docstring."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.data: list[bytes] = []  # the current node's data lines (first of each event)
        # ... their text (the first choice's: the receipt's), content chunks (those with
        # text) and the UTF-8 bytes of their choices' output (core/delivered.py), as each
        # was read (core/stream_guard.chunk_reading): never parsed again
        self.pieces: list[str] = []
        self.chunks = 0
        self.nbytes = 0
        self.echoes: dict[int, int] = {}  # choice index -> echoed prompt begun (``echo``)
        self._done = False  # the current node sent [DONE]
        self.text = ""  # text the client got from earlier nodes
        self.node_first = False  # the current node has sent a token
        self.usage_seen = False  # the current node sent its final usage chunk
        self.finished = False  # ... or a chunk ending its answer (a finish_reason)
        self.continued = False
        # the current node part's bounds (core/stream_guard.py)
        self.limit = UNBOUNDED  # tokens it may still send (set as its stream opens)
        self.no_data = 0  # its events without data (comments)
        self.outputs = 0  # its data events with output (text): what the floor counts
        self.clipped = False  # its usage said more than ``limit``: read as ``limit``
        self.opened = 0.0  # when its stream opened
        self.first_at: float | None = None  # when it sent its first token
        self.client_s = 0.0  # time spent writing its events to the client: not its own
        self.slow_at = math.inf  # the moment it is too slow unless it sends more
        self.lost0 = 0.0  # its node's shared time lost when its floor's clock started
        # since when it has sent nothing with output (a read's clock), ``client_s`` and its
        # node's shared time lost then, and since when the relay writes a batch to the
        # client (None: not writing): whether it had stalled when the client left
        # (core/prompt_count.stalled, stall35)
        self.quiet_from = 0.0
        self.quiet_client = 0.0
        self.quiet_lost = 0.0
        self.writing: float | None = None

    def _part(self) -> None:
        """A node part starts (its stream just opened, ``tally.node_id`` its node), with
        the tokens the request still allows on that node (:meth:`_left`)."""
        self.limit = self._left()
        self.clipped, self.no_data, self.outputs = False, 0, 0
        self.echoes = {}
        self.opened = self.ex.rt.clock()
        self.first_at, self.client_s = None, 0.0
        self.quiet_from, self.quiet_client, self.writing = self.opened, 0.0, None
        self.lost0 = self.quiet_lost = self._lost(self.opened)
        self.slow_at = slow_at(self.ex.rt.stream_floor, self.opened, None, 0)

    def _left(self) -> int:
        """The tokens the current node may still send: the job's limit (without
        ``max_tokens``: at the context its node declares, at most the one the estimate was
        priced at: ``Job.limit_on``), less those earlier nodes delivered."""
        ex = self.ex
        job, node = ex.job, ex.tally.node_id
        if job.token_limit <= 0:
            return UNBOUNDED
        limit = job.token_limit
        if job.max_tokens <= 0 and node is not None:
            hosted = ex.rt.table.hosted(node, job.model)
            limit = job.limit_on(hosted.context_length if hosted is not None else None)
        return limit - ex.tally.before

    def _lost(self, now: float) -> float:
        """The time the current node's requests lost to each other by ``now``
        (``core/stream_guard.SharedTime``; as a part streaming once it sent its first token,
        else as one waiting for it): not counted against this part."""
        node = self.ex.tally.node_id
        if node is None:
            return 0.0
        return self.ex.routing.shares.lost(node, now, streaming=self.first_at is not None)

    def _said_at_cut(self) -> int:
        """The prompt count its node said (``tally.said_prompt_tokens``) as the client cuts
        the stream now: 0 (not believed) when the part had stalled (``core/prompt_count``:
        nothing with output for longer than the floor allows an event, on its own time)."""
        ex = self.ex
        said = ex.tally.said_prompt_tokens
        if not said:
            return 0
        now = ex.rt.clock()
        client = self.client_s - self.quiet_client  # the relay's writes since: not its time
        if self.writing is not None:  # the client left during a write
            client += now - self.writing
        # the shared time lost since the quiet began, not since the part's floor clock
        # (found 2026-12-06, review35b: the time shared before it excused a stall after)
        quiet = quiet_s(now, self.quiet_from, client, self._lost(now) - self.quiet_lost)
        return believed_at_cut(said, quiet, ex.rt.stream_floor.min_rate)

    def _too_big(self) -> Broken:
        """The break when the event being read is past :data:`MAX_EVENT_BYTES`."""
        node = self.ex.tally.node_id
        return Broken(f"node {node} sent an event over {MAX_EVENT_BYTES} bytes")

    def _events(self, blobs: list[bytes]) -> tuple[list[Event], Broken | None]:
        """The events of ``blobs`` (whole SSE events, from the framer) up to the one that
        breaks the stream, and that break; ``[DONE]`` is noted, not passed on."""
        batch: list[Event] = []
        for blob in blobs:
            if self._done:  # its [DONE] ended its part: nothing after it (found 2026-12-04)
                break
            try:
                ev = self._event(blob)
            except Broken as exc:
                return batch, exc
            if ev is DONE_EVENT:
                self._done = True
            else:
                batch.append(ev)
        return batch, None

    def _event(self, blob: bytes) -> Event:
        if b"\r" in blob:  # a line ending to SSE clients, none to the framer: no JSON or
            # comment holds one, only a line hidden from the checks (found 2026-12-05)
            raise Broken(f"node {self.ex.tally.node_id} sent a bare CR in an event")
        if not blob.startswith(b"data:") or b"\n" in blob:  # rare: other fields, or lines
            first = self._data_line(blob)
            if not first:  # no data (a keep-alive): relayed as ":", none of the node's
                # bytes (a BOM or a "data" without colon was data to clients; found 2026-12-05)
                self.no_data += 1
                if too_many_without_data(self.no_data, self.outputs):  # a flood (found
                    node = self.ex.tally.node_id  # 2026-12-05: each read of one held the loop)
                    self._padded("without_data")
                    raise Broken(f"node {node} sent {self.no_data} events without data")
                return Event(DATA, b":", None, self.continued)
        else:
            first = blob
        if first == b"data: [DONE]":
            return DONE_EVENT
        obj = self._checked(first)
        if obj.get("model") != (model := self.ex.job.model):  # the client's model, not the
            obj["model"] = model  # node's name for it (found 2026-12-05: passed on as sent)
            first = b"data: " + strict_json.dumps(obj)
        if "error" in obj:  # the parsed key: `{ "error"` and "\u0065rror" too (found 2026-12-04)
            node = self.ex.tally.node_id  # its message as a refusal's, no more (found 2026-12-05)
            said = error_message(first[5:])
            raise Broken(f"node {node} reported an error mid-stream: {said}")
        # one look at its choices, passed along (core/stream_guard.chunk_reading)
        why, text, nbytes = chunk_reading(obj, self.ex.job.choices)
        if why is not None:  # a choice the request did not ask for: never relayed, counted
            node = self.ex.tally.node_id  # or paid (found 2026-12-05, choiceidx31: index 1
            raise Broken(f"node {node} sent a chunk outside the protocol: {why}")  # text
            # held the floor, reached the client, paid)
        if self.usage_seen:  # its final chunk went out: nothing of the node's after it
            node = self.ex.tally.node_id
            raise Broken(f"node {node} sent an event after its final (usage) chunk")
        data = self.data  # the part's data events so far: one a line
        if text or nbytes > 0:  # only output counts for the floor (found 2026-12-05: an
            self.outputs += 1  # empty delta was progress; core/stream_guard.carries_output)
        if len(data) >= self.limit:  # an honest node: its last few
            self._past_limit(text)
        data.append(first)
        if text:
            self.pieces.append(text)
            self.chunks += 1
        self.nbytes += self._priced_bytes(obj, text, nbytes)
        if self.ex.job.echo:
            self._echoed(obj)
        if not self.finished and chunk_finished(obj):
            self.finished = True  # its answer is over: not continued if it breaks now
        # the parsed key, not the bytes: "\u0075sage" is "usage" to every reader (found
        # 2026-12-04: such a final chunk was relayed as the node wrote it, its own mesh)
        if not self.node_first or "usage" in obj:
            self._read(obj, text)
            # a usage read as the limit: the relay writes the tally's instead
            return Event(DATA, first, obj, self.continued or self.clipped)
        if "mesh" in obj:  # the relay drops it: only the gateway's final chunk has one
            return Event(DATA, first, obj, self.continued)
        return Event(DATA, first, None, self.continued)

    def _past_limit(self, text: str) -> None:
        """Raises when this data event (its ``text``) takes the part past its limit
        (:class:`Overrun`: cut at the limit) or past its events with too little output
        (:class:`Broken`: it padded its answer; ``core/stream_guard.overrun``): its content
        chunks are those relayed so far (counted as each was read), and this one."""
        content = self.chunks + 1 if text else self.chunks
        verdict = overrun(self.limit, content, self.outputs, len(self.data) + 1)
        if not verdict:
            return
        node = self.ex.tally.node_id
        if verdict == PADDED:  # a break, continued elsewhere (found 2026-12-05: the
            # limit's normal end, "length", for an answer of one token or none)
            self._padded("without_output")
            raise Broken(
                f"node {node} sent {len(self.data) + 1} events, {self.outputs} with output, "
                f"past the {self.limit} tokens allowed: events without output"
            )
        raise Overrun(f"node {node} went past the {self.limit} tokens allowed")

    def _padded(self, kind: str) -> None:
        """A part cut for its events without output or without data (``kind``): counted
        (``llm_mesh_gateway_stream_padding_cuts``; found 2026-12-05: only in the log)."""
        metrics = self.ex.rt.metrics
        if metrics is not None:
            metrics.padding_cut(kind)

    def _too_slow(self, now: float) -> TooSlow | None:
        """The part's floor moment passed: it is recomputed with the events sent since
        (less the time the client took); past it still, the part is too slow."""
        floor = self.ex.rt.stream_floor
        shared = self._lost(now) - self.lost0  # its node's time went to other requests too
        base = slow_at(floor, self.opened, self.first_at, self.outputs)
        self.slow_at = base + self.client_s + shared
        if now <= self.slow_at:
            return None
        node = self.ex.tally.node_id
        if self.first_at is None:
            return TooSlow(f"node {node} sent no token within {floor.first_token_s:g} s")
        return TooSlow(
            f"node {node} is too slow: {self.outputs} events with output in "
            f"{now - self.first_at - self.client_s - shared:.1f} s of its time after its "
            f"first token (floor: {floor.min_rate:g}/s after {floor.grace_s:g} s)"
        )

    def _data_line(self, blob: bytes) -> bytes:
        """An event's one ``data:`` line, its other fields (a comment, ``event:``, ``id:``,
        ``retry:``) dropped; ``b""`` when it has none. Each is checked and relayed as an
        event of that line alone (found 2026-12-04: an event not beginning with its data
        line was relayed untouched: its content uncounted, a final chunk's ``mesh`` the
        node's). An event of several data lines (read line by line by ``receipt verify``,
        unreadable JSON to clients once joined) breaks the stream (found 2026-12-04: a
        final chunk or a ``mesh`` on its second line reached the client)."""
        lines = [line for line in blob.split(b"\n") if line.startswith(b"data:")]
        if len(lines) > 1:
            raise Broken(f"node {self.ex.tally.node_id} sent an event of several data lines")
        return lines[0] if lines else b""

    def _checked(self, first: bytes) -> dict[str, Any]:
        """The data line's JSON object; a data line that is not one (not JSON, a non-finite
        number: ``core/strict_json.py``) breaks the stream: the client gets only JSON.
        Every data line is parsed once, here (about 2-3 us a token). A string holding a lone
        UTF-16 surrogate escape (``"\\ud800"``: no Unicode character) breaks it too: nothing
        writes it as UTF-8 (found 2026-12-05, ``stream32``: the receipt's hash of the part's
        text, or the chunk written again, raised ``UnicodeEncodeError``, the client's stream
        cut without an error event, the node not blamed); only such an escape makes one, so
        a line is looked at further only when it holds ``\\ud`` (two substring searches)."""
        try:
            obj = strict_json.loads_object(first[5:])
        except (ValueError, RecursionError):  # nested past the parser's limit
            node = self.ex.tally.node_id
            said = first[5:80].decode("utf-8", "replace")
            raise Broken(f"node {node} sent an event that is not JSON: {said!r}") from None
        if b"\\ud" in first or b"\\uD" in first:
            try:
                strict_json.refuse_lone_surrogates(first[5:], obj)
            except ValueError as exc:
                node = self.ex.tally.node_id
                raise Broken(f"node {node} sent an event that is not Unicode text: {exc}") from None
        return obj

    def _read(self, obj: dict[str, Any], text: str) -> None:
        """The first token (the gateway's time to first token: a chunk with ``text``) and
        the final chunk's usage."""
        ex = self.ex
        if not self.node_first and text:
            self.node_first = True
            ex.first_token()
            real = ex.rt.clock()
            self.first_at = now = real - self.client_s  # on the node's own time
            self.lost0 = self._lost(real)  # the floor's clock starts again here
            self.slow_at = slow_at(ex.rt.stream_floor, self.opened, now, self.outputs)
            self.slow_at += self.client_s
        usage = obj.get("usage")
        if isinstance(usage, dict) and not obj.get("choices"):
            tally = ex.tally
            pt, ct = usage_counts(usage)
            if ct > self.limit:  # more than the request allows: read as the limit
                ct, self.clipped = self.limit, True
            # a continuing node's prompt held the text so far
            tally.prompt_tokens = max(0, pt - tally.before) if self.continued else pt
            tally.completion_tokens = self._observe(pt, ct, obj.get("mesh"))  # (read once)
            self.usage_seen = True

    def _observe(self, pt: int, ct: int, node_mesh: Any) -> int:
        """The current node's part for the receipt: its text as relayed (read as each data
        line was), its counts and its ``mesh.receipt``. Returns the count priced: ``ct``, at
        most the bytes it delivered (``core/delivered.py``)."""
        tally, job = self.ex.tally, self.ex.job
        text = "".join(self.pieces)
        nbytes = self._generated_bytes()
        digest = output_sha256(text)
        claim = node_mesh.get("receipt") if isinstance(node_mesh, dict) else None
        tally.outputs.append(Observed(tally.node_id or "", pt, ct, digest, claim,
                                      part=len(tally.parts)))  # fmt: skip
        tally.output_sha256 = output_sha256(self.text + text) if self.text else digest
        tally.completion_cap = completion_cap(nbytes, job.choices, job.stop_bytes)
        return priced_completion(ct, nbytes, job.choices, job.stop_bytes)

    def _priced_bytes(self, obj: dict[str, Any], text: str, nbytes: int) -> int:
        """A chunk's bytes its part is priced by: ``nbytes`` (every field of generated text:
        what the floor counts as output), for a catalog model its choices' content only
        (``core/delivered.py``, ``Job.text_only``), walked again only when the chunk holds
        more than its text (another field, or ``n`` > 1)."""
        job = self.ex.job
        if not job.text_only or not nbytes:
            return nbytes
        if nbytes == (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))):
            return nbytes
        return chunk_bytes((obj,), job.choices, text_only=True)

    def _echoed(self, obj: dict[str, Any]) -> None:
        """How much of the echoed prompt each choice of the chunk ``obj`` has begun with
        (its indexes already judged: ``core/answer_text.choice_fault``)."""
        prompt, echoes = self.ex.job.prompt_text, self.echoes
        for place, choice in enumerate(obj.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            text, index = choice.get("text"), choice.get("index", place)
            if isinstance(text, str) and type(index) is int:
                echoes[index] = echo_advance(echoes.get(index, 0), text, prompt)

    def _generated_bytes(self) -> int:
        """The current part's bytes its count is capped at: those relayed, less a
        completion's echoed prompt for each choice that begins with it (``_echoed``; until
        2026-12-06, attack34, once a part: the first choice's)."""
        if not self.echoes:  # (no echo asked, or no text yet)
            return self.nbytes
        prompt = self.ex.job.prompt_text
        whole = sum(1 for m in self.echoes.values() if prompt and m == len(prompt))
        return max(0, self.nbytes - len(prompt.encode("utf-8", "surrogatepass")) * whole)

    def _unsigned_part(
        self, status: PartStatus, node: str | None = None, claim: PromptClaim | None = None
    ) -> int:
        """The current node's part when it sent no final chunk (``status`` says why): its
        relayed text joins the text so far; its data lines are done with. Its chunks, priced
        as any part (at most its bytes + slack: never less, each chunk counted holds text).
        ``claim``: the node's signed prompt count, believed at a client's cut (its receipt
        part then keeps it: ``core/prompt_count.py``)."""
        tally, job = self.ex.tally, self.ex.job
        text, chunks = "".join(self.pieces), self.chunks
        nbytes = self._generated_bytes()
        self.data, self.pieces, self.chunks, self.nbytes = [], [], 0, 0
        self.echoes = {}
        self.text += text
        if chunks:
            node = node or tally.node_id or "?"
            digest = output_sha256(text)
            tally.outputs.append(Observed(node, 0, chunks, digest, no_receipt=status,
                                          prompt_claim=claim, part=len(tally.parts)))  # fmt: skip
            tally.output_sha256 = output_sha256(self.text)
        return priced_completion(chunks, nbytes, job.choices, job.stop_bytes)
