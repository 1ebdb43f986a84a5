"""What the dashboard's routes share: the gateway's runtime, the traffic feed, the
templates (Jinja2, autoescaped) and the limiter of operator-token look-ups."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from LLM_Mesh import __version__
from LLM_Mesh.core.ratelimit import Limits, RateLimiter
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.dashboard.feed import TrafficFeed
from LLM_Mesh.registry.dashboard.views import amount_nt
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["NAV", "PATH", "Dashboard", "get_dashboard"]

PATH = "/dashboard"
HERE = Path(__file__).parent
NAV = (
    ("overview", "/", "Overview"),
    ("nodes", "/nodes", "Nodes"),
    ("models", "/models", "Models"),
    ("ledger", "/ledger", "Ledger"),
    ("playground", "/playground", "Playground"),
    ("operator", "/operator", "Operator"),
)
# operator-token look-ups per client address (each is a store query): a guesser gets 30 a minute
OPERATOR_LOOKUPS = Limits(rpm=30)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value rendered is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nt"] = amount_nt  # micro-NetworkTokens as NetworkTokens, exactly
    return env


@dataclass
class Dashboard:
    runtime: Runtime
    feed: TrafficFeed
    env: jinja2.Environment = field(default_factory=_environment)
    lookups: RateLimiter = field(default_factory=lambda: RateLimiter(max_scopes=10_000))
    clock: Callable[[], float] = time.monotonic  # for the look-up limiter and the cache
    # how long a store aggregate shown on public pages (30-day earnings) is reused: every open
    # Nodes page refreshes each 5 s, and figures over 30 days need not be fresher than this
    cache_ttl_s: float = 30.0
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    # how long a public page whose size grows with the mesh (the node table, the models) is
    # served as rendered, to everyone: anyone may ask for it in a loop, and with 500 nodes
    # a render costs the gateway's event loop ~70-180 ms (2026-12-03); pages refresh every
    # 5 s, so no viewer sees the difference
    render_ttl_s: float = 1.0
    _rendered: dict[str, tuple[float, bytes, int]] = field(default_factory=dict)

    async def cached(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``fetch()``'s result, reused for ``cache_ttl_s`` seconds under ``key``."""
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        value = await fetch()
        self._cache[key] = (now, value)
        return value

    async def shared(
        self, request: Request, key: str, make: Callable[[], Awaitable[HTMLResponse]]
    ) -> HTMLResponse:
        """``make()``'s page, rendered at most once per ``render_ttl_s`` for every client:
        only for pages that show everyone the same (``key`` names one of a fixed few)."""
        key = request.scope.get("root_path", "") + "\0" + key
        now = self.clock()
        hit = self._rendered.get(key)
        if hit is not None and now - hit[0] < self.render_ttl_s:
            return HTMLResponse(hit[1], status_code=hit[2])
        page = await make()
        self._rendered[key] = (now, bytes(page.body), page.status_code)
        return page

    def now(self) -> float:
        """Wall-clock seconds: the traffic series' time."""
        return self.feed.clock()

    def render(
        self, request: Request, template: str, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/") or PATH
        gateway = base[: -len(PATH)] if base.endswith(PATH) else ""
        ctx.setdefault("charts", False)
        ctx.setdefault("scripts", [])
        ctx.setdefault("page", "")
        ctx.setdefault("title", "LLM Mesh")
        html = self.env.get_template(template).render(
            base=base,
            gateway=gateway,
            static=base + "/static",
            nav=[(key, base + href, label) for key, href, label in NAV],
            version=__version__,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)


def get_dashboard(request: Request) -> Dashboard:
    dash = request.app.state.dashboard
    if not isinstance(dash, Dashboard):  # pragma: no cover - wiring bug
        raise MeshError("dashboard missing")
    return dash
