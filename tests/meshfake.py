"""A fake registry + gateway behind httpx.MockTransport, for the seed API tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from LLM_Mesh.core.catalog import CATALOG, get_spec

REGISTRY_URL = "http://mesh.test"


class FakeMesh:
    """Answers /mesh/models, /mesh/nodes, /mesh/health-check and /v1/(chat/)completions.

    ``up`` names the models some healthy node hosts; every node is called ``node-<model>``.
    """

    def __init__(self, up: list[str], *, answer: str = "    return n") -> None:
        self.up = list(up)
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.completions: list[dict[str, Any]] = []

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def node(self, model: str) -> dict[str, Any]:
        return {
            "node_id": f"node-{model}",
            "url": f"http://{model}.nodes.test:8801",
            "region": "eu",
            "state": "online",
            "healthy": True,
            "models": [{"id": model, "engine": "sim", "simulated": True}],
            "in_flight": 0,
            "latency_ms_ewma": 12.5,
            "health_score": 1.0,
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path == "/mesh/models":
            models = [
                {**m.to_dict(), "available": m.id in self.up, "nodes": int(m.id in self.up)}
                for m in CATALOG
            ]
            return httpx.Response(200, json={"models": models})
        if request.method == "GET" and path == "/mesh/nodes":
            return httpx.Response(200, json={"nodes": [self.node(m) for m in self.up]})
        if request.method == "POST" and path == "/mesh/health-check":
            results = [
                {
                    "node_id": f"node-{m}",
                    "url": f"http://{m}.nodes.test:8801",
                    "ok": True,
                    "latency_ms": 3.0,
                    "error": None,
                }
                for m in self.up
            ]
            return httpx.Response(200, json={"results": results})
        if request.method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            body = json.loads(request.content)
            self.completions.append(body)
            model = body["model"]
            if get_spec(model) is None:
                return httpx.Response(
                    404,
                    json={
                        "error": {
                            "message": f"model {model!r} not found",
                            "type": "invalid_request_error",
                            "param": "model",
                            "code": "model_not_found",
                        }
                    },
                )
            if model not in self.up:
                return httpx.Response(
                    503,
                    json={
                        "error": {
                            "message": f"no healthy node hosts {model}",
                            "type": "service_unavailable",
                            "param": "model",
                            "code": "model_unavailable",
                            "model": model,
                            "available": sorted(self.up),
                            "retry_after": 10,
                        }
                    },
                )
            if path == "/v1/completions":
                choice: dict[str, Any] = {
                    "index": 0,
                    "text": self.answer,
                    "finish_reason": "length",
                }
                obj = "text_completion"
            else:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
                obj = "chat.completion"
            return httpx.Response(
                200,
                json={
                    "id": "cmpl-1",
                    "object": obj,
                    "model": model,
                    "choices": [choice],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33},
                    "mesh": {
                        "node_id": f"node-{model}",
                        "model": model,
                        "engine": "sim",
                        "simulated": True,
                        "request_id": "req-1",
                        "latency_ms": 45.5,
                        "ttft_ms": 5.25,
                        "tokens_per_s": 488.0,
                        "prompt_tokens": 11,
                        "completion_tokens": 22,
                        "cost": 0.000033,
                        "attempts": 1,
                    },
                },
            )
        return httpx.Response(404, json={"error": {"message": f"no route {path}", "code": None}})
