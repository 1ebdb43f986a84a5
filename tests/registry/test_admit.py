"""The admission stage: checks run in order before any node is called; a check can
answer instead, refuse with a MeshError, or hold the request to learn how it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import Response

from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.access import AnonymousLast, Authenticate, RateLimit
from LLM_Mesh.registry.admit import Hold, IdempotencyCheck
from LLM_Mesh.registry.charge import Charge
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.pipeline import Pipeline
from tests.registry.helpers import running

CHAT = "/v1/chat/completions"
BODY = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


class Unauthorized(MeshError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Ledger:
    """A check that holds every request and keeps how each ended."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, Any]] = []

    async def __call__(self, job: Job, client: Client) -> Hold:
        ledger = self

        class _Hold:
            def release(self, response: Response | None) -> None:
                status = None if response is None else response.status_code
                ledger.ended.append(("release", status))

            def abandon(self) -> None:
                ledger.ended.append(("abandon", None))

            async def settled(self) -> None:  # awaited before the answer goes out
                ledger.ended.append(("settled", None))

        return _Hold()


async def require_key(job: Job, client: Client) -> None:
    if job.body.get("seed") != 42:  # a field the parse stage keeps (not "user": withheld)
        raise Unauthorized("no key")


async def test_default_checks_in_order(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        pipeline = h.app.state.pipeline
        assert isinstance(pipeline, Pipeline)
        assert [type(c) for c in pipeline.admission.checks] == [
            Authenticate,
            RateLimit,
            Charge,
            IdempotencyCheck,
            AnonymousLast,
        ]
    async with running(tmp_path, settlement=False) as h:
        checks = h.app.state.pipeline.admission.checks
        assert [type(c) for c in checks] == [
            Authenticate, RateLimit, IdempotencyCheck, AnonymousLast
        ]  # fmt: skip


async def test_checks_run_in_order_before_any_node(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a")
        ledger = Ledger()
        h.app.state.pipeline = Pipeline(h.runtime, checks=[require_key, ledger])
        r = await h.client.post(CHAT, json=BODY)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert node.calls == [] and ledger.ended == []  # refused before the ledger ran
        r = await h.client.post(CHAT, json={**BODY, "seed": 42})
        assert r.status_code == 200 and len(node.calls) == 1
        assert ledger.ended == [("release", 200), ("settled", None)]
        r = await h.client.post(CHAT, json={**BODY, "seed": 42, "stream": True})
        assert r.status_code == 200 and ledger.ended[-2:] == [("release", None), ("settled", None)]


async def test_a_check_may_answer_instead(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a")
        ledger = Ledger()

        async def cached(job: Job, client: Client) -> Response:
            return Response(b'{"cached":true}', 200, media_type="application/json")

        h.app.state.pipeline = Pipeline(h.runtime, checks=[ledger, cached])
        r = await h.client.post(CHAT, json=BODY)
        assert r.json() == {"cached": True} and node.calls == []
        # the earlier hold hears the answer
        assert ledger.ended == [("release", 200), ("settled", None)]


async def test_a_stream_that_fails_to_start_is_abandoned(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        ledger = Ledger()
        h.app.state.pipeline = Pipeline(h.runtime, checks=[ledger])
        r = await h.client.post(CHAT, json={**BODY, "stream": True})  # no node at all
        assert r.status_code == 503
        assert ledger.ended == [("abandon", None), ("settled", None)]
        r = await h.client.post(CHAT, json=BODY)  # a non-stream keeps its error answer
        assert r.status_code == 503 and ledger.ended[-2:] == [("release", 503), ("settled", None)]
