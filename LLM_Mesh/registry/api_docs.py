"""``/docs``: FastAPI's Swagger UI page, every byte of it from the registry itself.

FastAPI's page takes ``swagger-ui-dist@5`` (a floating version, no subresource integrity)
from cdn.jsdelivr.net: offline it was a blank page, and online a CDN's script ran on the
gateway's origin, the dashboard's (docs/security.md, "Dashboard"). Here the page is
FastAPI's own (:func:`get_swagger_ui_html`) pointed at the Swagger UI files the pinned
``fastapi-offline`` package ships (Swagger UI 5.x, which renders OpenAPI 3.1), served under
:data:`STATIC` with their content types, ``nosniff`` and an ``ETag``. The page's policy
(:func:`docs_csp`) allows scripts, styles, images and connections from the gateway's origin
only, plus the page's one inline script by its hash: no other host is ever asked for
anything (Swagger UI's online validator badge is off). The page may not be framed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

__all__ = ["ASSETS_DIR", "DOCS_HEADERS", "STATIC", "docs_csp", "install_api_docs"]

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
STATIC = "/docs/static"

# what the page runs with besides its policy (the policy names the inline script's hash)
DOCS_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSET_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=3600",
}
_INLINE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(inline_script: str) -> str:
    """The page's Content-Security-Policy: the gateway's origin, and ``inline_script``
    (the page's ``SwaggerUIBundle({...})`` call) by its SHA-256."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src 'self' 'sha256-{digest}'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
        "object-src 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class _Assets(StaticFiles):
    """Swagger UI's files, with ``nosniff`` and a short cache (revalidated by ETag)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_ASSET_HEADERS)
        return response


def install_api_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and its files under :data:`STATIC` (no OAuth2
    redirect page: the API has no OAuth2 flow). ``app`` is made with ``docs_url=None``."""

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from swagger.io
        )
        inline = _INLINE.search(bytes(page.body).decode())
        if inline is None:  # pragma: no cover - FastAPI's page has one
            raise RuntimeError("no inline script in FastAPI's Swagger UI page")
        page.headers.update(DOCS_HEADERS)
        page.headers["Content-Security-Policy"] = docs_csp(inline.group(1))
        return page

    app.add_route("/docs", docs, include_in_schema=False)
    app.mount(STATIC, _Assets(directory=ASSETS_DIR), name="api-docs-static")
