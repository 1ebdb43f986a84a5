"""The mission, proven: requests through gateway → node → gemma-3-270m, separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from LLM_Mesh.local_mesh import LocalMesh

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_completion_through_the_mesh_is_real_code(real_mesh: LocalMesh) -> None:
    r = httpx.post(
        real_mesh.registry_url + "/v1/completions",
        json={
            "model": "gemma-3-270m",
            "prompt": "def fibonacci(n):",
            "max_tokens": 48,
            "temperature": 0,
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["text"]
    # A real model continues a Python function with Python: an indented body mentioning n.
    assert "n" in text and ("return" in text or "if" in text), text
    assert body["usage"]["completion_tokens"] > 0
    mesh = body["mesh"]
    assert mesh["model"] == "gemma-3-270m"
    assert mesh["simulated"] is False
    assert mesh["engine"] == "llama-cpp"
    assert mesh["node_id"]
    assert mesh["latency_ms"] > 0 and mesh["ttft_ms"] > 0
    assert mesh["cost"] > 0


@pytest.mark.parametrize("include_usage", [False, True], ids=["plain", "include_usage"])
def test_streaming_through_the_mesh(real_mesh: LocalMesh, include_usage: bool) -> None:
    """Without ``stream_options.include_usage`` the stream ends as OpenAI's does, its last
    chunk the one with ``finish_reason`` (carrying ``usage`` and ``mesh``); with it, a last
    chunk of ``"choices": []`` carries them (found 2026-12-05: always the empty one)."""
    body: dict[str, Any] = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "Write a Python function that adds two numbers."}],
        "max_tokens": 24,
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with httpx.stream(
        "POST", real_mesh.registry_url + "/v1/chat/completions", json=body, timeout=60
    ) as r:
        assert r.status_code == 200
        assert r.headers["x-mesh-model"] == "gemma-3-270m"
        assert r.headers["x-mesh-node"]
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[5:]) for line in lines[:-1]]
    content = "".join(
        (c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]
    )
    assert content.strip()
    final = chunks[-1]
    if include_usage:
        assert final["choices"] == []
    else:
        assert all(c["choices"] for c in chunks)  # the naive chunk.choices[0] loop works
        assert final["choices"][0]["finish_reason"] in ("length", "stop")
    assert final["usage"]["completion_tokens"] > 0
    assert final["mesh"]["cost"] > 0


def test_openai_client_against_the_real_gateway(real_mesh: LocalMesh) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(
        base_url=real_mesh.registry_url + "/v1", api_key="anonymous", max_retries=0
    )
    try:
        models = [m.id for m in client.models.list().data]
        assert "gemma-3-270m" in models
        c = client.completions.create(
            model="gemma-3-270m", prompt="def add(a, b):", max_tokens=16, temperature=0
        )
        assert c.choices[0].text
        assert (c.model_extra or {})["mesh"]["node_id"]
        pieces = []
        for chunk in client.completions.create(
            model="gemma-3-270m", prompt="import os\n", max_tokens=16, stream=True
        ):
            pieces.extend(ch.text for ch in chunk.choices)
        assert "".join(pieces)
    finally:
        client.close()


def test_seed_python_api_against_the_real_network(real_mesh: LocalMesh) -> None:
    code = """
import asyncio
from LLM_Mesh.distributed_models import initialize_distributed_models, model_registry, get_model_response
from LLM_Mesh.errors import ModelUnavailable
from LLM_Mesh.mesh_manager import mesh_manager

summary = asyncio.run(initialize_distributed_models())
assert "gemma-3-270m" in summary["models_available"], summary

async def main():
    r = await get_model_response(model_name="gemma-3-270m", prompt="def fibonacci(n):", task_type="python", max_tokens=16)
    assert r.text and r.node_id and r.cost > 0 and r.simulated is False, r
    try:
        await get_model_response(model_name="code-llama-7b", prompt="def fibonacci(n):", task_type="python")
    except ModelUnavailable as exc:
        assert "gemma-3-270m" in exc.available, exc.available
    else:
        raise SystemExit("code-llama-7b is hosted by no node: expected ModelUnavailable")
    fb = await get_model_response(model_name="code-llama-7b", prompt="def fibonacci(n):", task_type="python", fallback=True, max_tokens=8)
    assert fb.fallback_from == "code-llama-7b" and fb.model == "gemma-3-270m", fb
    info = model_registry.get_model_info()
    assert info["models"]["gemma-3-270m"]["available"]
    one = model_registry.get_model_info("code-llama-7b")
    assert one["available"] is False and one["hosts"] == []
    results = await model_registry.health_check_all_hosts()
    assert results and all(x["ok"] for x in results), results

asyncio.run(main())
res = mesh_manager.handle_task("debug", {"code": "def f(x): return x +", "error": "SyntaxError"}, max_tokens=16)
assert res.model == "gemma-3-270m" and res.response and res.cost > 0, res
print("SEED-OK")
"""
    env = {
        **os.environ,
        "LLM_MESH_REGISTRY_URL": real_mesh.registry_url,
        # the user who ran `llm-mesh up`: its home holds the admin key the health check sends
        "LLM_MESH_HOME": str(real_mesh.settings.home),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SEED-OK" in out.stdout

    status = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.distributed_models"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert "gemma-3-270m" in status.stdout


def test_bad_input_never_reaches_a_node(real_mesh: LocalMesh) -> None:
    url = real_mesh.registry_url
    cases = [
        ("/v1/chat/completions", b"{not json"),
        ("/v1/chat/completions", json.dumps({"model": "gemma-3-270m", "messages": []}).encode()),
        (
            "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
        ),
        (
            "/v1/completions",
            json.dumps({"model": "gemma-3-270m", "prompt": "x", "max_tokens": -5}).encode(),
        ),
        (
            "/v1/completions",
            json.dumps({"model": "gemma-3-270m", "prompt": "x", "max_tokens": 10**9}).encode(),
        ),
        (
            "/v1/completions",
            json.dumps({"model": "gemma-3-270m", "prompt": "x " * 300_000}).encode(),
        ),
    ]
    for path, body in cases:
        r = httpx.post(
            url + path, content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert 400 <= r.status_code < 500, (path, body[:60], r.status_code, r.text)
        assert r.json()["error"]["message"]
    r = httpx.post(
        url + "/v1/completions", json={"model": "no-such-model", "prompt": "x"}, timeout=10
    )
    assert r.status_code == 404
    assert "gemma-3-270m" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", json={"model": "mistral-7b", "prompt": "x"}, timeout=10)
    assert r.status_code == 503
    assert "retry-after" in r.headers


def test_penalties_change_the_real_models_answer_through_the_mesh(real_mesh: LocalMesh) -> None:
    """``presence_penalty`` / ``frequency_penalty`` through gateway and node to llama.cpp
    (found 2026-12-05: accepted and ignored). Greedy decoding: the same request, the same
    answer; with a penalty, another (the openai SDK, as a user sends it)."""
    from openai import OpenAI

    def greedy(prompt: str, **penalty: float) -> str:
        r = client.completions.create(model="gemma-3-270m", prompt=prompt, max_tokens=20,
                                      temperature=0, seed=1, **penalty)  # fmt: skip
        return r.choices[0].text

    url = real_mesh.registry_url + "/v1"
    with OpenAI(base_url=url, api_key="anonymous", max_retries=0) as client:
        plain = greedy("The cat sat on the")
        assert greedy("The cat sat on the", presence_penalty=0, frequency_penalty=0) == plain
        assert greedy("The cat sat on the", presence_penalty=2) != plain
        apples = "List: apple, apple, apple, apple,"
        assert greedy(apples).count("apple") >= 5
        assert greedy(apples, frequency_penalty=2).count("apple") < 5


def test_the_context_said_is_the_one_the_node_serves(real_mesh: LocalMesh) -> None:
    """Found 2026-12-06 (context34): ``node info`` said 4096 (the node's ``n_ctx``),
    ``llm-mesh models`` and ``/v1/models`` 32768 (the catalog's), ``ask --max-tokens
    9999999`` "exceeds 32768" (the schema's cap); now every one says what the node serves."""
    url = real_mesh.registry_url
    nodes = httpx.get(url + "/mesh/nodes", timeout=10).json()["nodes"]
    (hosted,) = [m for n in nodes for m in n["models"] if m["id"] == "gemma-3-270m"]
    declared = hosted["context_length"]
    assert isinstance(declared, int) and 16 <= declared < 32_768, hosted  # the node's n_ctx
    (listed,) = [m for m in httpx.get(url + "/v1/models", timeout=10).json()["data"]
                 if m["id"] == "gemma-3-270m"]  # fmt: skip
    assert (listed["context_length"], listed["catalog_context_length"]) == (declared, 32_768)
    for max_tokens in (declared + 1, 9_999_999):
        body = {"model": "gemma-3-270m", "prompt": "x", "max_tokens": max_tokens}
        r = httpx.post(url + "/v1/completions", json=body, timeout=30)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["code"], err["context_length"]) == ("context_length_exceeded", declared)
        assert f"context length of {declared} tokens, the largest a live node" in err["message"]
    home = str(real_mesh.settings.home)
    env = {**os.environ, "LLM_MESH_REGISTRY_URL": url, "LLM_MESH_HOME": home, "COLUMNS": "120"}
    ask = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "ask", "hi", "--model", "gemma-3-270m",
         "--max-tokens", "9999999"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = " ".join((ask.stdout + ask.stderr).split())
    assert ask.returncode != 0 and "--max-tokens 9999999 exceeds" in said, said
    assert f"{declared} tokens" in said and "32768," not in said, said
    models = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "models"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    row = next(line for line in models.stdout.splitlines() if "gemma-3-270m" in line)
    assert f"{declared:,}" in row or str(declared) in row, models.stdout
