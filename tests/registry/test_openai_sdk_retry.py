"""The openai SDK's own retries (``x-should-retry``, ``core/client_retry.py``) against the
real registry: an error no retry can help (no node serves the model, the request's
regions exclude every node, the client's own 4xx) reaches the user at once; a full node's
429 is still retried after its ``Retry-After`` (found 2026-12-05: the SDK retried a 503
for a model no node hosts twice, ``Retry-After: 10`` each time, ~21 s before the error,
where the README says the gateway answers at once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh
from tests.registry.helpers import running

HI = [{"role": "user", "content": "hi"}]


class Sent:
    """What the SDK sent: each attempt's request, and each answer's retry advice."""

    def __init__(self) -> None:
        self.attempts = 0
        self.advice: list[str | None] = []
        self.waits: list[str | None] = []  # each answer's Retry-After

    async def request(self, request: httpx.Request) -> None:
        self.attempts += 1

    async def response(self, response: httpx.Response) -> None:
        self.advice.append(response.headers.get("x-should-retry"))
        self.waits.append(response.headers.get("retry-after"))


def _sdk(transport: httpx.AsyncBaseTransport, base: str, sent: Sent) -> openai.AsyncOpenAI:
    """The SDK as a user has it: its default retries (2), its own rule."""
    hooks = {"request": [sent.request], "response": [sent.response]}
    http = httpx.AsyncClient(transport=transport, event_hooks=hooks)  # type: ignore[dict-item]
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="anonymous", http_client=http)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("code-llama-7b", {}),  # a catalog model no node hosts
        ("gemma-3-270m", {"avoid_regions": ["eu"]}),  # its only node is in an avoided region
    ],
)
async def test_an_error_no_retry_can_help_reaches_the_user_at_once(
    inprocess_mesh: InProcessMesh, model: str, extra: dict[str, object]
) -> None:
    inprocess_mesh.add_node("gemma-3-270m", region="eu-west")  # SIMULATED (sim engine)
    sent = Sent()
    async with _sdk(inprocess_mesh.transport(), REGISTRY_URL, sent) as client:
        t0 = time.monotonic()
        with pytest.raises(openai.InternalServerError) as refused:
            await client.chat.completions.create(model=model, messages=HI, extra_body=extra)
        took = time.monotonic() - t0
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"]  # kept: a new node may come
    assert (sent.attempts, sent.advice) == (1, ["false"])
    assert took < 2.0, took


async def test_the_clients_own_4xx_is_never_retried(inprocess_mesh: InProcessMesh) -> None:
    sent = Sent()
    async with _sdk(inprocess_mesh.transport(), REGISTRY_URL, sent) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nope", messages=HI)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="gemma-3-270m", messages=[])
    assert (sent.attempts, sent.advice) == (2, ["false", "false"])


async def test_a_full_nodes_429_is_still_retried_by_the_sdk(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        node.behavior, node.retry_after = "429", "1"  # full: "try again in 1 s"
        sent = Sent()
        async with _sdk(httpx.ASGITransport(app=h.app), "http://mesh", sent) as client:
            client = client.with_options(max_retries=1)
            t0 = time.monotonic()
            with pytest.raises(openai.RateLimitError) as full:
                await client.chat.completions.create(model="gemma-3-270m", messages=HI)
            took = time.monotonic() - t0
    assert full.value.status_code == 429 and sent.waits[0] == "1"
    assert (sent.attempts, sent.advice) == (2, ["true", "true"])
    assert len(node.calls) == 1 and took >= 0.9  # the retry after its Retry-After (the
    # gateway then knows the node full until its next heartbeat: 429 with its own estimate)


@pytest.fixture
def short_deadline_mesh(tmp_path: Path) -> Iterator[InProcessMesh]:
    """The in-process mesh with a 0.3 s request deadline (``request_timeout_s``)."""
    mesh = InProcessMesh(tmp_path / "mesh", request_timeout_s=0.3).start()
    try:
        yield mesh
    finally:
        mesh.close()


async def test_a_request_that_used_its_whole_deadline_is_not_run_again_by_the_sdk(
    short_deadline_mesh: InProcessMesh,
) -> None:
    """A 504 means the request used its whole deadline (``request_timeout_s``): a retry
    takes as long again (found 2026-12-05, a new user's walk: a real model on a loaded box
    hit the 120 s deadline, and the SDK's two retries made one call take 6 minutes, each
    running the model again). SIMULATED: a sim node slower than a 0.3 s deadline."""
    mesh = short_deadline_mesh
    mesh.add_node("gemma-3-270m", ttft_s=5.0, sleep=asyncio.sleep)  # SIMULATED, slow
    sent = Sent()
    async with _sdk(mesh.transport(), REGISTRY_URL, sent) as client:
        t0 = time.monotonic()
        with pytest.raises(openai.InternalServerError) as spent:
            await client.chat.completions.create(model="gemma-3-270m", messages=HI)
        took = time.monotonic() - t0
    assert spent.value.status_code == 504
    assert (sent.attempts, sent.advice) == (1, ["false"])  # main: 3 attempts, no advice
    assert took < 1.5, took  # one deadline (0.3 s), not three plus the SDK's backoffs
    message = spent.value.message
    for words in ("deadline", "0.3 s", "max_tokens", "stream"):  # what to change
        assert words in message, message
