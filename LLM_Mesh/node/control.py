"""The operator's side of a running node and of the registry's demand.

Async functions over a passed-in ``httpx.AsyncClient`` (tests hand in an ASGI or
mock transport):

- :func:`node_admin` — ``POST {node}/mesh/admin/pause|resume|drain`` (the node
  answers loopback clients only) → the node's health;
- :func:`node_info` — ``GET {node}/mesh/info``;
- :func:`measured_speeds` — the models' ``measured`` of ``GET {node}/mesh/info`` (None
  when no node answers: ``node plan`` prints without them; within ``MEASURED_READ_S``,
  1 s, and a line saying so when a node took the connection but did not answer);
- :func:`node_earnings` — ``GET {node}/mesh/earnings`` (the node asks its registry
  with its operator token; the registry's ``/v1/earnings`` answer for that node);
- :func:`wait_drained` — poll ``GET {node}/mesh/health`` until nothing runs or
  waits, reporting each poll;
- :func:`fetch_demand` — ``GET {registry}/mesh/demand`` (:func:`first_demand`: of the
  first replica that answers it); ``None`` when the
  registry does not answer it (404, unreachable, unexpected body): "no demand
  data", never an error. The expected body::

      {"models": [{"model": "mistral-7b", "requests_waiting": 3,
                   "requests_refused": 12, "nodes_serving": 1}, ...]}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from LLM_Mesh.bounded_http import AnswerRefused, AnswerTimedOut, call
from LLM_Mesh.core.plan import ModelDemand
from LLM_Mesh.errors import MeshError, RegistryUnreachable, error_from_payload

if TYPE_CHECKING:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.node.config import NodeConfig

ADMIN_ACTIONS = ("pause", "resume", "drain")
DEFAULT_NODE_URL = "http://127.0.0.1:8801"
# what `node info` and `node plan` read of the registry's public listings (decoded), whole
# within REGISTRY_READ_S: a registry that answers without end, with a gzip bomb or a byte at
# a time is "no answer" (found 2026-12-03: read whole and inflated, a drip held them for ever);
# a redirect is not followed (the CLI's client follows them, for downloads: a registry sent
# `node info` on to any address of the operator's network)
MAX_LISTING_BYTES = 32 << 20
REGISTRY_READ_S = 10.0


def home_node_url(settings: Settings, cfg: NodeConfig | None) -> str:
    """Where the node of this home listens: the node running with its key (``cfg``'s
    ``key_file``, else the home's) wrote its URL into its lock; else the node ``cfg``
    configures; else :data:`DEFAULT_NODE_URL`."""
    from LLM_Mesh.node.config import local_node_url
    from LLM_Mesh.node.keys import key_path, running_node_url

    running = running_node_url(key_path(settings, cfg.key_file if cfg else None))
    if running:
        return running
    if cfg is None:
        return DEFAULT_NODE_URL
    return local_node_url(cfg.host, cfg.port, bool(cfg.tls_cert))


def home_node_target(settings: Settings, cfg: NodeConfig | None) -> tuple[str, str | None]:
    """:func:`home_node_url`, and the node id the node found there must have: ``None`` when
    the URL is the one the home's running node wrote (it is that node), or the home has no
    key to tell; else the home key's id (found 2026-12-07, newuser41: with the home's node
    stopped, whatever node listened at node.toml's port or 8801 was paused)."""
    from LLM_Mesh.node.keys import NodeKey, key_path, load_key, running_node_url

    path = key_path(settings, cfg.key_file if cfg else None)
    if running_node_url(path) is not None or not path.is_file():
        return home_node_url(settings, cfg), None
    try:
        expected = NodeKey(load_key(path), path, created=False).node_id
    except (OSError, ValueError):  # an unreadable key: the command goes on as before
        expected = None
    return home_node_url(settings, cfg), expected


async def refuse_another_node(client: httpx.AsyncClient, url: str, expected: str) -> None:
    """``MeshError`` when the node answering at ``url`` is not ``expected`` (another
    home's); a node that does not answer, or says no id, is left to the command's own call."""
    try:
        found = (await _call(client, "GET", f"{url.rstrip('/')}/mesh/health")).get("node_id")
    except MeshError:
        return
    if isinstance(found, str) and found != expected:
        raise MeshError(
            f"the node at {url} is {found}, not this home's node {expected}: this home's node "
            "is not running there (it writes where it listens while it runs); to act on "
            f"{found} anyway, pass --node-url {url}"
        )


async def checked_home_node_url(
    settings: Settings, cfg: NodeConfig | None, client: Callable[[], httpx.AsyncClient]
) -> str:
    """:func:`home_node_url`, once :func:`refuse_another_node` found no other node there
    (``client``: the command's client factory)."""
    url, expected = home_node_target(settings, cfg)
    if expected is not None:  # not the running node's own URL: is the node there this home's?
        async with client() as c:
            await refuse_another_node(c, url, expected)
    return url


async def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        data = resp.text
    if resp.status_code >= 400:
        raise error_from_payload(resp.status_code, data)
    if not isinstance(data, dict):
        raise MeshError(f"unexpected answer from {resp.request.url}: {str(data)[:200]}")
    return data


async def _call(client: httpx.AsyncClient, method: str, url: str) -> dict[str, Any]:
    try:
        resp = await client.request(method, url)
    except httpx.HTTPError as exc:
        raise RegistryUnreachable(
            f"no node answers at {url.split('/mesh')[0]} ({exc!r}); is it running? "
            "(pass --node-url)"
        ) from None
    return await _json(resp)


async def node_admin(client: httpx.AsyncClient, node_url: str, action: str) -> dict[str, Any]:
    """Pause, resume or drain the node; its health afterwards."""
    if action not in ADMIN_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ADMIN_ACTIONS)}, got {action!r}")
    return await _call(client, "POST", f"{node_url.rstrip('/')}/mesh/admin/{action}")


async def node_info(client: httpx.AsyncClient, node_url: str) -> dict[str, Any]:
    return await _call(client, "GET", f"{node_url.rstrip('/')}/mesh/info")


async def node_earnings(client: httpx.AsyncClient, node_url: str, days: int = 30) -> dict[str, Any]:
    """The node's earnings as its registry reports them; raises the node's error
    (``RegistryUnreachable`` when the registry does not answer the node)."""
    return await _call(client, "GET", f"{node_url.rstrip('/')}/mesh/earnings?days={days}")


QUALITY_FIELDS = (
    "trust_score", "trusted", "verifier", "canary_passed", "canary_failed", "quarantined",
)  # fmt: skip


async def registry_quality(
    client: httpx.AsyncClient, registry_url: str, node_id: str, *,
    deadline_s: float = REGISTRY_READ_S,
) -> dict[str, Any] | None:  # fmt: skip
    """The registry's quality view of ``node_id`` (trust score, canary tally, quarantines,
    from the public ``GET /mesh/nodes``); None when it cannot be had."""
    url = f"{registry_url.rstrip('/')}/mesh/nodes"
    try:
        r = await call(
            client, "GET", url, MAX_LISTING_BYTES, deadline_s=deadline_s, timeout=5.0,
            follow_redirects=False,
        )  # fmt: skip
        nodes = r.json().get("nodes") if r.status_code == 200 else None
    except (httpx.HTTPError, AnswerRefused, ValueError, AttributeError, RecursionError):
        return None
    for n in nodes if isinstance(nodes, list) else []:
        if isinstance(n, dict) and n.get("node_id") == node_id:
            return {k: n[k] for k in QUALITY_FIELDS if k in n}
    return None


# `node plan` waits no longer for the local node's measured speeds (asked beside the
# registry's demand, not before it): a node on this machine answers its /mesh/info in
# milliseconds; one that takes the connection and says nothing (stopped, hung) held the
# plan 2 s before the registry was even asked (found 2026-12-07)
MEASURED_READ_S = 1.0
MAX_INFO_BYTES = 4 << 20


async def measured_speeds(
    client: httpx.AsyncClient,
    node_url: str,
    expected: str | None = None,
    *,
    deadline_s: float | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """The running node's ``measured`` (``core/measured_speed.py``) by model id, from its
    ``/mesh/info`` within ``deadline_s`` (None: :data:`MEASURED_READ_S`), and a note: ``""``
    when it answered, or no node does (nothing listens, a refusal, another body: ``node
    plan`` then prints as before, with no error); when one took the connection but did not
    answer in time, the line that says so (None for the speeds). ``expected``: the node id
    the node there must have (:func:`home_node_target`, as :func:`refuse_another_node`
    checks for ``node pause``): another node's speeds are not shown, a line says why (found
    2026-12-07, user41b: with the home's node stopped, ``node plan`` showed those of the
    node another home ran on that port)."""
    deadline_s = MEASURED_READ_S if deadline_s is None else deadline_s
    url = f"{node_url.rstrip('/')}/mesh/info"
    try:
        r = await call(
            client, "GET", url, MAX_INFO_BYTES, deadline_s=deadline_s, timeout=deadline_s,
            follow_redirects=False,
        )  # fmt: skip
        body = r.json() if r.status_code == 200 else None
        models = body.get("models") if body is not None else None
        found = body.get("node_id") if body is not None else None
    except (httpx.TimeoutException, AnswerTimedOut):
        return None, (
            f"the node at {node_url} did not answer within {deadline_s:g} s: no measured "
            "tok/s beside the estimate (`llm-mesh node info` asks it again)"
        )
    except (httpx.HTTPError, AnswerRefused, ValueError, AttributeError, RecursionError):
        return None, ""
    if not isinstance(models, list):
        return None, ""
    if expected is not None and isinstance(found, str) and found != expected:
        return None, (
            f"the node at {node_url} is {found}, not this home's node {expected} (this home's "
            "node is not running): its measured tok/s are not shown"
        )
    speeds = {
        m["id"]: m.get("measured")
        for m in models
        if isinstance(m, dict) and isinstance(m.get("id"), str)
    }
    return speeds, ""


async def node_health(client: httpx.AsyncClient, node_url: str) -> dict[str, Any]:
    return await _call(client, "GET", f"{node_url.rstrip('/')}/mesh/health")


async def wait_drained(
    client: httpx.AsyncClient,
    node_url: str,
    *,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    interval_s: float = 0.5,
    timeout_s: float | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> dict[str, Any]:
    """Poll the node's health until ``in_flight`` and ``queued`` are 0; its last health.

    Raises ``TimeoutError`` after ``timeout_s`` seconds of polls (``None``: wait forever).
    """
    waited = 0.0
    while True:
        health = await node_health(client, node_url)
        if on_poll is not None:
            on_poll(health)
        if int(health.get("in_flight") or 0) == 0 and int(health.get("queued") or 0) == 0:
            return health
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(
                f"still {health.get('in_flight')} running and {health.get('queued')} "
                f"waiting after {timeout_s:g} s"
            )
        await sleep(interval_s)
        waited += interval_s


def parse_demand(data: Any) -> dict[str, ModelDemand] | None:
    """The demand body → per-model :class:`ModelDemand`; ``None`` for a body not understood."""
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return None
    out: dict[str, ModelDemand] = {}
    for item in models:
        if not isinstance(item, dict):
            continue
        model = item.get("model") or item.get("id")
        if not isinstance(model, str) or not model:
            continue
        try:
            out[model] = ModelDemand(
                model=model,
                requests_waiting=int(item.get("requests_waiting") or 0),
                requests_refused=int(item.get("requests_refused") or 0),
                nodes_serving=int(item.get("nodes_serving") or 0),
            )
        except (TypeError, ValueError, OverflowError):
            continue
    return out


async def fetch_demand(
    client: httpx.AsyncClient, registry_url: str, *, deadline_s: float = REGISTRY_READ_S
) -> tuple[dict[str, ModelDemand] | None, str]:
    """The network's demand per model and a note; ``(None, why)`` when there is none."""
    url = f"{registry_url.rstrip('/')}/mesh/demand"
    try:
        resp = await call(
            client, "GET", url, MAX_LISTING_BYTES, deadline_s=deadline_s, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        return None, f"no demand data: the registry at {registry_url} is unreachable ({exc!r})"
    except AnswerRefused:
        return (
            None,
            f"no demand data: the registry at {registry_url} answered too much or too slowly",
        )
    if resp.status_code == 404:
        return None, f"no demand data: the registry at {registry_url} does not publish demand yet"
    if resp.status_code >= 400:
        return None, f"no demand data: GET /mesh/demand answered HTTP {resp.status_code}"
    try:
        demand = parse_demand(resp.json())
    except (ValueError, RecursionError):
        demand = None
    if demand is None:
        return None, "no demand data: the registry's /mesh/demand answer was not understood"
    return demand, f"demand from {registry_url} ({len(demand)} models)"


async def first_demand(
    client: httpx.AsyncClient, registry_urls: Sequence[str]
) -> tuple[dict[str, ModelDemand] | None, str]:
    """:func:`fetch_demand` of the first of ``registry_urls`` (replicas) that answers it;
    the last one's ``(None, why)`` when none does."""
    found: tuple[dict[str, ModelDemand] | None, str] = (None, "no demand data: no registry")
    for url in registry_urls:
        found = await fetch_demand(client, url)
        if found[0] is not None:
            break
    return found
