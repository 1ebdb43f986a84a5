"""``/docs`` from the registry's own files, and ``nosniff`` on the API's JSON answers.

Both from the 2026-12-03 review of the public surfaces (docs/security.md, "Dashboard");
each test names what the registry did before its fix. ``tests/e2e/test_dashboard.py``
loads ``/docs`` in Chromium with every other host unreachable.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx

from tests.registry.helpers import running

CHAT = "/v1/chat/completions"
BODY = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
# what a page may name: a path on the gateway's own origin, nothing else
SAME_ORIGIN = re.compile(r"^/(?!/)[^\s\\]*$")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _urls(page: str) -> list[str]:
    """Every URL the page names: its ``src``/``href`` attributes and the quoted strings of
    its inline script (the OpenAPI document's URL is one)."""
    attrs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", page)
    (inline,) = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    quoted = re.findall(r"""["']([^"'\s]*[/.:][^"'\s]*)["']""", inline)
    return attrs + quoted


async def test_the_api_docs_page_and_its_files_are_the_gateways_own(tmp_path: Path) -> None:
    """``/docs`` names only paths on the gateway's origin; its script, style and icon answer
    200 there with their content types, ``nosniff`` and an ETag; the script is Swagger UI 5
    (OpenAPI 3.1, the document's version). Its policy runs scripts and styles of the
    gateway's origin and its one inline script by hash: no CDN, no ``unsafe-inline``.
    Found 2026-12-03: the page took ``swagger-ui-dist@5`` from cdn.jsdelivr.net and its icon
    from fastapi.tiangolo.com (offline: a blank page; online: a floating CDN version without
    subresource integrity, run on the dashboard's origin), and had no script policy."""
    async with running(tmp_path) as h:
        docs = await h.client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        page = docs.text
        urls = _urls(page)
        assert "/openapi.json" in urls and len(urls) >= 4, urls
        assert all(SAME_ORIGIN.match(u) for u in urls), urls
        assert "http:" not in page and "https:" not in page and "//" not in page
        # the page's files: served here, each with its type
        assets = [u for u in urls if u.rsplit(".", 1)[-1] in ("js", "css", "png")]
        assert {u.rsplit(".", 1)[-1] for u in assets} == {"js", "css", "png"}
        for url in assets:
            r = await h.client.get(url)
            assert r.status_code == 200, url
            assert CONTENT_TYPES["." + url.rsplit(".", 1)[-1]] in r.headers["content-type"]
            assert r.headers["x-content-type-options"] == "nosniff"
            assert len(r.content) > 1000 and r.headers["etag"]
            again = await h.client.get(url, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
        (js,) = [u for u in assets if u.endswith(".js")]
        version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)', (await h.client.get(js)).text)
        assert version is not None and int(version.group(1)) >= 5
        assert (await h.client.get("/openapi.json")).json()["openapi"].startswith("3.1")
        # the policy: the origin's scripts and styles, the inline script by its hash
        csp = docs.headers["content-security-policy"]
        directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
        (inline,) = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert directives["script-src"] == ["'self'", f"'sha256-{digest}'"]
        assert directives["style-src"] == ["'self'"]
        assert directives["default-src"] == ["'none'"]
        assert directives["connect-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in csp
        assert docs.headers["x-frame-options"] == "DENY"
        assert docs.headers["x-content-type-options"] == "nosniff"
        assert docs.headers["referrer-policy"] == "no-referrer"
        assert (await h.client.get("/docs/static/nothing.js")).status_code == 404


async def test_the_apis_json_answers_are_never_sniffed(tmp_path: Path) -> None:
    """Every JSON answer carries ``X-Content-Type-Options: nosniff``: the hot ``/v1`` posts
    (answer and refusal), the node messages' hot heartbeat, FastAPI's routes (``/mesh``,
    ``/v1/models``, the ledger, ``/openapi.json``), a 404, a 413 and a stream. Found
    2026-12-03: none did (a browser could sniff an answer echoing a client's text as HTML);
    then all but ``/openapi.json``."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        answers: dict[str, httpx.Response] = {
            "chat": await h.client.post(CHAT, json=BODY),
            "chat refused": await h.client.post(CHAT, json={**BODY, "model": "no-such-model"}),
            "chat bad json": await h.client.post(
                CHAT, content=b"{", headers={"content-type": "application/json"}
            ),
            "chat too large": await h.client.post(
                CHAT, content=b"x" * (h.settings.limits.max_body_bytes + 1)
            ),
            "chat stream": await h.client.post(CHAT, json={**BODY, "stream": True}),
            "models": await h.client.get("/v1/models"),
            "mesh nodes": await h.client.get("/mesh/nodes"),
            "mesh nodes again": await h.client.get("/mesh/nodes"),  # the body kept (node_listing)
            "heartbeat": await h.client.post(
                "/mesh/nodes/node-a/heartbeat",
                json={"state": "online", "in_flight": 0, "queued": 0},
            ),
            "ledger": await h.client.get("/v1/ledger"),
            "ledger export": await h.client.get("/v1/ledger/export"),
            "unknown route": await h.client.get("/mesh/no-such-thing"),
            "openapi": await h.client.get("/openapi.json"),  # (until 2026-12-03: none)
        }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "chat": 200,
        "chat refused": 404,
        "chat bad json": 400,
        "chat too large": 413,
        "chat stream": 200,
        "models": 200,
        "mesh nodes": 200,
        "mesh nodes again": 200,
        "heartbeat": 200,
        "ledger": 200,
        "ledger export": 200,
        "unknown route": 404,
        "openapi": 200,
    }
    for name, r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", (name, dict(r.headers))
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], name
