"""The project's client obeys ``x-should-retry`` (``client_failover.py``,
``core/client_retry.client_advice``): found 2026-12-05, it failed over on every 5xx of a
call with a request id, so a 504 that used the whole deadline ran again, a full run on a
node, on the next replica (a failed request frees its id there: ``registry/idempotency.py``),
and it raised a 429 whose answer said to retry after 3 s at once. Fake gateways in process
(httpx.MockTransport) answer with the gateway's own error bodies and headers
(``MeshError.to_openai``, ``core/client_retry.retry_header``); waits are recorded, not slept.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from LLM_Mesh.client import MeshClient
from LLM_Mesh.core.client_retry import CLIENT_RETRIES, retry_header
from LLM_Mesh.errors import (
    EngineError,
    MeshError,
    ModelUnavailable,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from tests.test_client import CHAT_ANSWER, sse

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _error(exc: MeshError, retry_after: int | None = None, **said: bool) -> httpx.Response:
    """``exc`` as the gateway answers it: its body, ``Retry-After`` and ``x-should-retry``."""
    headers = retry_header(exc.status, retry_after, **said)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return httpx.Response(exc.status, json=exc.to_openai(), headers=headers)


TIMEOUT = UpstreamTimeout("node n did not answer within the request's deadline of 120 s")

ANSWERS: dict[str, Any] = {
    "504": lambda: _error(TIMEOUT),
    "500": lambda: _error(EngineError("a fault")),
    "502_no_estimate": lambda: _error(UpstreamError("every node failed")),
    "503_hopeless": lambda: _error(ModelUnavailable("no node serves m", model="m"), hopeless=True),
    "429_in_3s": lambda: _error(Overloaded("busy"), 3),
    "503_in_2s": lambda: _error(ModelUnavailable("draining", model="m"), 2),
    "502_in_1s": lambda: _error(UpstreamError("a node failed; another takes it"), 1),
    "429_in_2min": lambda: _error(Overloaded("busy"), 120),
    "500_older": lambda: httpx.Response(500, json={"error": {"message": "old", "code": None}}),
}


class Gateways:
    """Gateways by host, each answering its ``script`` in turn (the last one for ever):
    ``ok``, ``refuse``, ``reset`` or a key of :data:`ANSWERS`."""

    def __init__(self, **script: list[str]) -> None:
        self.script = script
        self.seen: list[tuple[str, str | None]] = []  # (host, X-Request-Id)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, request.headers.get("x-request-id")))
        steps = self.script[host]
        mode = steps.pop(0) if len(steps) > 1 else steps[0]
        if mode == "refuse":
            raise httpx.ConnectError("Connection refused", request=request)
        if mode == "reset":
            raise httpx.ReadError("Connection reset by peer", request=request)
        if mode != "ok":
            answer: httpx.Response = ANSWERS[mode]()
            return answer
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=sse({"choices": [{"delta": {"content": host}}]}))
        return httpx.Response(200, json={**CHAT_ANSWER, "id": host})

    @property
    def hosts(self) -> list[str]:
        return [h for h, _ in self.seen]


def _client(
    gw: Gateways, urls: str = "http://a.test,http://b.test"
) -> tuple[MeshClient, list[float]]:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    http = httpx.AsyncClient(transport=httpx.MockTransport(gw))
    return MeshClient(urls, http_client=http, sleep=sleep), waits


async def _call(c: MeshClient, stream: bool) -> str:
    """The answering gateway's host (a chat call, or a stream's first delta)."""
    if not stream:
        return str((await c.chat(CHAT))["id"])
    got = [x async for x in c.stream("/v1/chat/completions", CHAT)]
    return str(got[1]["choices"][0]["delta"]["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(
    ("answer", "error"),
    [("504", UpstreamTimeout), ("500", EngineError), ("502_no_estimate", UpstreamError),
     ("503_hopeless", ModelUnavailable)],
)  # fmt: skip
async def test_an_answer_saying_false_is_raised_and_no_other_gateway_asked(
    answer: str, error: type[MeshError], stream: bool
) -> None:
    gw = Gateways(**{"a.test": [answer], "b.test": ["ok"]})
    c, waits = _client(gw)
    with pytest.raises(error):
        await _call(c, stream)
    assert gw.hosts == ["a.test"]  # before: b.test ran it again (the 504: a full run)
    assert waits == [] and c.failovers == 0 and c.retries == 0


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("answer", "wait"), [("429_in_3s", 3.0), ("503_in_2s", 2.0),
                                              ("502_in_1s", 1.0)])  # fmt: skip
async def test_an_answer_saying_true_is_asked_again_after_its_retry_after(
    answer: str, wait: float, stream: bool
) -> None:
    """The next gateway in turn, after the wait, with the same request id."""
    gw = Gateways(**{"a.test": [answer], "b.test": ["ok"]})
    c, waits = _client(gw)
    assert await _call(c, stream) == "b.test"  # before: the 429 raised at once
    assert waits == [wait] and c.retries == 1
    (h1, id1), (h2, id2) = gw.seen
    assert (h1, h2) == ("a.test", "b.test") and id1 == id2 and id1


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_one_gateway_is_asked_again_at_most_client_retries_times(stream: bool) -> None:
    gw = Gateways(**{"a.test": ["429_in_3s", "503_in_2s", "ok"]})
    c, waits = _client(gw, "http://a.test")
    assert await _call(c, stream) == "a.test"
    assert waits == [3.0, 2.0] and gw.hosts == ["a.test"] * 3
    gw = Gateways(**{"a.test": ["429_in_3s"]})
    c, waits = _client(gw, "http://a.test")
    with pytest.raises(Overloaded):
        await _call(c, stream)
    assert waits == [3.0] * CLIENT_RETRIES and len(gw.seen) == CLIENT_RETRIES + 1


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_wait_past_the_clients_bound_is_raised_at_once(stream: bool) -> None:
    gw = Gateways(**{"a.test": ["429_in_2min"], "b.test": ["ok"]})
    c, waits = _client(gw)
    with pytest.raises(Overloaded):
        await _call(c, stream)
    assert gw.hosts == ["a.test"] and waits == []


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("down", ["refuse", "reset", "500_older"])
async def test_a_gateway_down_or_an_older_one_still_fails_over(down: str, stream: bool) -> None:
    """No answer (refused, reset) says nothing; nor does an older gateway's 5xx without
    the header: the next gateway at once, as before."""
    gw = Gateways(**{"a.test": [down], "b.test": ["ok"]})
    c, waits = _client(gw)
    assert await _call(c, stream) == "b.test"
    assert gw.hosts == ["a.test", "b.test"] and waits == [] and c.failovers == 1


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_each_wait_a_gateway_asked_for_is_said_while_it_lasts(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-05 (newuser31): ``llm-mesh ask`` against a gateway answering 502 with
    ``x-should-retry: true`` and ``Retry-After: 4`` sat silent for 10 s, then printed the
    error: nothing said it had been asked again twice. Each wait is a WARNING (stderr in
    ``ask``, the library's log otherwise) naming the gateway, its answer and the wait."""
    import logging

    caplog.set_level(logging.WARNING)
    gw = Gateways(**{"a.test": ["502_in_1s", "429_in_3s", "ok"]})
    c, _waits = _client(gw, "http://a.test")
    assert await _call(c, stream) == "a.test"
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 2, said
    assert "http://a.test answered HTTP 502" in said[0] and "again in 1 s (retry 1 of 2)" in said[0]
    assert "HTTP 429" in said[1] and "again in 3 s (retry 2 of 2)" in said[1], said


async def test_the_wait_said_quotes_the_gateway_as_text(caplog: pytest.LogCaptureFixture) -> None:
    """The gateway's words in that WARNING are a peer's: no terminal escape gets through."""
    import logging

    caplog.set_level(logging.WARNING)

    def answer(request: httpx.Request) -> httpx.Response:
        if len(calls) == 0:
            calls.append(1)
            return _error(Overloaded("busy \x1b]52;c;Zm9v\x07\x1b[2J now"), 1)
        return httpx.Response(200, json={**CHAT_ANSWER, "id": "x"})

    calls: list[int] = []

    async def sleep(s: float) -> None:
        return None

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    await MeshClient("http://a.test", http_client=http, sleep=sleep).chat(CHAT)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "busy" in said and "\x1b" not in said and "\x07" not in said, said


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_the_final_error_after_retries_says_how_many_and_over_how_long(
    stream: bool,
) -> None:
    """Found 2026-12-05 (``polish31``): after a 502 ``llm-mesh ask`` asked again twice (as
    its ``x-should-retry: true`` said), its final error line was the gateway's words alone:
    nothing said it had been retried, nor for how long. Now it says both (the time from the
    first answer that said to retry to the last answer, on the client's clock)."""
    gw = Gateways(**{"a.test": ["502_in_1s", "502_in_1s", "502_no_estimate"]})
    now = [100.0]

    async def sleep(s: float) -> None:
        now[0] += s + 0.25  # the wait, and the next answer's time

    http = httpx.AsyncClient(transport=httpx.MockTransport(gw))
    c = MeshClient("http://a.test", http_client=http, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(UpstreamError) as caught:
        await _call(c, stream)
    assert len(gw.seen) == 3 and c.retries == 2
    text = str(caught.value)
    assert text.startswith("every node failed"), text
    assert text.endswith("(asked again 2 times, as the gateway said (x-should-retry), over 2.5 s)")
    assert caught.value.message == text  # what `ask` prints (cli/common.fail: said)
    # the third answer saying retry too: the retries are spent, said the same way
    gw = Gateways(**{"a.test": ["502_in_1s"]})
    now[0] = 0.0
    c = MeshClient("http://a.test", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(gw)), sleep=sleep, clock=lambda: now[0])  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        await _call(c, stream)
    assert str(caught.value).endswith("(asked again 2 times, as the gateway said "
                                      "(x-should-retry), over 2.5 s)")  # fmt: skip


async def test_an_error_without_a_retry_says_nothing_of_retries() -> None:
    gw = Gateways(**{"a.test": ["502_no_estimate"]})
    c, _waits = _client(gw, "http://a.test")
    with pytest.raises(UpstreamError) as caught:
        await _call(c, False)
    assert str(caught.value) == "every node failed"
