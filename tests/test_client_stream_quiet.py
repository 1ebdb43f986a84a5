"""A hostile gateway streaming events without output for ever (empty deltas, role-only
deltas, ``choices: []``, comments): ``MeshClient.stream`` (the seed API's streaming,
``DistributedModelRegistry.client``) ends it past ``core/client_floor``'s bound, naming it;
a stream as an honest gateway sends it (keep-alives during a failover's wait, a usage
chunk, the most it may relay without output) passes. ``llm-mesh ask --stream``:
``tests/cli/test_ask_stream_quiet.py``; the real gateway: ``tests/registry/test_client_floor_gateway.py``.

Found 2026-12-05: such a gateway held the stream for its whole 30 min bound."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.client import MeshClient
from LLM_Mesh.client_stream import QuietStream
from LLM_Mesh.core.client_floor import honest_most, quiet_bound, stream_limit
from LLM_Mesh.core.stream_guard import NO_DATA_EVENTS, SLACK_EVENTS
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import UpstreamError

GW = "http://gw.test"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
BOUND = quiet_bound(BODY, chat=True)
HEAD = {"id": "c-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
DONE = b"data: [DONE]\n\n"


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _choice(**kw: Any) -> bytes:
    return _ev({**HEAD, "choices": [{"index": 0, **kw}]})


TOKEN = _choice(delta={"content": "Hi"})
THINK = _choice(delta={"reasoning_content": "hm"})  # output, not text (priced)
# an event without output, in each shape a hostile gateway may repeat
QUIET: dict[str, bytes] = {
    "empty_delta": _choice(delta={}),
    "empty_content": _choice(delta={"content": ""}),
    "role": _choice(delta={"role": "assistant"}),
    "no_choices": _ev({**HEAD, "choices": []}),
    "finish": _choice(delta={}, finish_reason="stop"),
    "usage": _ev({**HEAD, "choices": [], "usage": {"completion_tokens": 1}}),
    "comment": b": keep-alive\n\n",
    "bare_comment": b":\n\n",
    "other_field": b"event: ping\n\n",
    # blank lines beyond the one ending an event make no event (core/sse_frame.py): each
    # counts as one without output (review31: a flood of them was never counted)
    "blank_lines": b"\n\n",
}
FINAL = _ev({**HEAD, "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}})


class Gateway:
    """A gateway whose stream is ``events()``, produced lazily: ``pulled`` counts what the
    client read (an endless generator is cut by the client, or runs until the test's cap)."""

    def __init__(self, events: Callable[[], Any]) -> None:
        self.events = events
        self.pulled = 0

    async def body(self) -> AsyncIterator[bytes]:
        for ev in self.events():
            self.pulled += 1
            yield ev

    def http(self) -> httpx.AsyncClient:
        def answer(request: httpx.Request) -> httpx.Response:
            head = {"content-type": "text/event-stream", "x-mesh-node": "n1"}
            return httpx.Response(200, headers=head, content=self.body())

        return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def endless(quiet: bytes, first: bytes | None = TOKEN, every: int = 0) -> Callable[[], Any]:
    """``first`` (a token), then ``quiet`` without end (a token every ``every``-th, 0:
    never), capped at far past the bound so a client without a floor ends (as if whole)."""

    def events() -> Any:
        if first is not None:
            yield first
        for i in range(1, 3 * BOUND.events):
            yield TOKEN if every and i % every == 0 else quiet
        yield DONE

    return events


async def _read(gw: Gateway, path: str = CHAT, body: dict[str, Any] = BODY) -> list[dict[str, Any]]:
    async with MeshClient(GW, http_client=gw.http()) as client:
        return [c async for c in client.stream(path, body)]


@pytest.mark.parametrize("shape", list(QUIET))
async def test_a_gateway_streaming_events_without_output_for_ever_is_cut(shape: str) -> None:
    gw = Gateway(endless(QUIET[shape]))
    with pytest.raises(QuietStream) as caught:
        await _read(gw)
    assert isinstance(caught.value, AnswerRefused)  # the bounds' error, a MeshError
    msg = str(caught.value)
    assert f"{BOUND.run + 1:,} events in a row without output (more than {BOUND.run:,})" in msg
    assert GW in msg and "max_tokens" in msg
    assert gw.pulled <= BOUND.run + 2  # cut there, not read on


async def test_a_gateway_with_no_first_token_is_cut_too() -> None:
    gw = Gateway(endless(QUIET["role"], first=None))
    with pytest.raises(QuietStream, match="in a row"):
        await _read(gw)
    assert gw.pulled <= BOUND.run + 1


async def test_a_gateway_mixing_a_token_in_now_and_then_is_cut_in_all() -> None:
    """A token every ``run`` events resets the run, never the total."""
    gw = Gateway(endless(QUIET["empty_delta"], every=BOUND.run))
    with pytest.raises(QuietStream, match=rf"{BOUND.events + 1:,} events without output"):
        await _read(gw)
    assert gw.pulled <= BOUND.events + BOUND.events // BOUND.run + 2


async def test_the_seed_apis_stream_is_cut() -> None:
    gw = Gateway(endless(QUIET["no_choices"]))
    seed = DistributedModelRegistry(registry_url=GW, http_client=gw.http(), warn_plain_http=False)
    with pytest.raises(QuietStream, match="without output"):
        async with seed.client() as client:
            async for _ in client.stream(CHAT, BODY):
                pass
    assert gw.pulled <= BOUND.run + 2


async def test_a_completion_is_held_to_its_own_bound() -> None:
    body = {"model": "m", "prompt": "hi", "max_tokens": 4, "echo": True}
    bound = quiet_bound(body, chat=False)
    assert stream_limit(body, chat=False) == 5  # + 1: the echoed prompt
    gw = Gateway(endless(_ev({**HEAD, "choices": [{"index": 0, "text": ""}]})))
    with pytest.raises(QuietStream, match=rf"more than {bound.run:,}\)"):
        await _read(gw, COMPLETIONS, body)


def _honest_most(parts: int) -> list[bytes]:
    """The most an honest gateway sends without output in a row for BODY
    (``core/client_floor``'s derivation): the first part's ``L + S`` data events all with
    output (a token, then priced reasoning), its keep-alives (``C`` + 2 an output event),
    then ``parts - 1`` parts that send no output (a role chunk, ``L + S - 1`` empty deltas,
    ``C`` keep-alives each: a failover's wait), the gateway's finish and final chunks."""
    data = stream_limit(BODY, chat=True) + SLACK_EVENTS
    out = [TOKEN, *[THINK] * (data - 1), *[QUIET["comment"]] * (NO_DATA_EVENTS + 2 * data)]
    for _ in range(parts - 1):
        out += [QUIET["role"], *[QUIET["empty_delta"]] * (data - 1)]
        out += [QUIET["bare_comment"]] * NO_DATA_EVENTS
    return [*out, QUIET["finish"], FINAL, DONE]


async def test_the_most_an_honest_gateway_sends_without_output_passes() -> None:
    events = _honest_most(parts=16)
    quiet = sum(1 for ev in events if ev not in (TOKEN, THINK, DONE))
    assert quiet == honest_most(stream_limit(BODY, chat=True)).run  # the bound's own case
    gw = Gateway(lambda: events)
    chunks = await _read(gw)
    assert gw.pulled == len(events)
    assert chunks[0]["object"] == "mesh.headers" and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_an_honest_stream_with_a_failover_wait_and_a_usage_chunk_passes() -> None:
    """A role chunk, two tokens, the node breaks: 64 keep-alives while another node is
    found, its text (its role chunk dropped by the gateway), the finish chunk, the usage
    chunk with the gateway's ``mesh``, ``[DONE]``: every event read, the text whole."""

    def events() -> Any:
        yield QUIET["role"]
        yield from [TOKEN] * 2
        yield from [QUIET["bare_comment"]] * NO_DATA_EVENTS
        yield from [_choice(delta={"content": w}) for w in (" the", "re")]
        yield QUIET["finish"]
        yield _ev({**HEAD, "choices": [], "usage": {"completion_tokens": 4}, "mesh": {"cost": 1}})
        yield DONE

    gw = Gateway(events)
    chunks = await _read(gw)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:] if c["choices"])
    assert text == "HiHi there" and chunks[-1]["mesh"] == {"cost": 1}


@pytest.mark.parametrize("index", [1, -1, 2**70, "0", 0.0, None])
async def test_a_chunk_of_a_choice_not_asked_for_is_refused_not_read_as_the_answers(
    index: Any,
) -> None:
    """A chunk whose only choice has another index than choice 0 of a request of ``n`` 1
    (found 2026-12-05, ``choiceidx31``: read as the answer's text, and as output for the
    floor): refused, the gateway relays none (``core/answer_text.choice_fault``)."""
    other = _ev({**HEAD, "choices": [{"index": index, "delta": {"content": "SECRET"}}]})
    gw = Gateway(lambda: iter([TOKEN, other, FINAL, DONE]))
    with pytest.raises(UpstreamError, match="outside the protocol"):
        await _read(gw)


async def test_a_chunk_of_two_choices_of_one_index_is_refused() -> None:
    both = [{"index": 0, "delta": {"content": "a"}}, {"index": 0, "delta": {"content": "b"}}]
    gw = Gateway(lambda: iter([TOKEN, _ev({**HEAD, "choices": both}), FINAL, DONE]))
    with pytest.raises(UpstreamError, match="two of its choices have index 0"):
        await _read(gw)
