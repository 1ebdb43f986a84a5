"""An async client for the gateway's OpenAI API and the registry's ``/mesh`` API.

Used by the seed API (``distributed_models``, ``mesh_manager``) and the CLI.
Errors come back as the mesh's exceptions: nothing answering at the URL is
:class:`~LLM_Mesh.errors.RegistryUnreachable`; an OpenAI-shaped error body is
rebuilt into its class (``ModelUnavailable``, ``InvalidRequest``, ...).

Requests to the OpenAI API (``/v1``) carry ``Authorization: Bearer <api_key>`` when an
API key is given (``llm-mesh ask --api-key``, ``$LLM_MESH_API_KEY``), and no
``Authorization`` header otherwise: the gateway serves them as anonymous.

The caller may pass its own ``httpx.AsyncClient`` (one per process, as the
house style wants); otherwise the client owns one and closes it in ``aclose``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from LLM_Mesh.errors import MeshError, RegistryUnreachable, UpstreamError, error_from_payload
from LLM_Mesh.tls import client_ssl_context

DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=30.0)


def _unreachable(base_url: str, exc: Exception) -> RegistryUnreachable:
    return RegistryUnreachable(
        f"no LLM Mesh registry answered at {base_url} ({type(exc).__name__}: {exc}). "
        "Start one with `llm-mesh up`, or point LLM_MESH_REGISTRY_URL at a running registry."
    )


def raise_for_error(response: httpx.Response) -> None:
    """Raise the mesh exception an error response stands for."""
    if response.status_code < 400:
        return
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    raise error_from_payload(response.status_code, payload)


class MeshClient:
    """Talks to one registry + gateway at ``base_url`` (e.g. ``http://127.0.0.1:8800``)."""

    def __init__(
        self,
        base_url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        admin_key: str | None = None,
        api_key: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin_key = admin_key
        self._api_key = api_key
        self._owned = http_client is None
        # an https registry: the system's CAs, and ``ca_file``'s (Settings.registry_ca)
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, verify=client_ssl_context(ca_file)
        )

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = await self._http.request(method, self.base_url + path, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _unreachable(self.base_url, exc) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"the registry at {self.base_url} timed out on {path}") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"the connection to {self.base_url} failed on {path}: {type(exc).__name__}: {exc}"
            ) from exc
        raise_for_error(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    # --- registry -----------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._request("GET", "/healthz")
        return data

    async def nodes(self) -> list[dict[str, Any]]:
        """The nodes; with ``admin_key`` the admin's view (URLs and hardware too)."""
        headers = {"Authorization": f"Bearer {self._admin_key}"} if self._admin_key else None
        data = await self._request("GET", "/mesh/nodes", headers=headers)
        return list(data["nodes"])

    async def models(self) -> list[dict[str, Any]]:
        data = await self._request("GET", "/mesh/models")
        return list(data["models"])

    async def health_check(self) -> list[dict[str, Any]]:
        """One active health-check pass now: an admin operation (``admin_key``)."""
        headers = {"Authorization": f"Bearer {self._admin_key}"} if self._admin_key else None
        data = await self._request("POST", "/mesh/health-check", headers=headers)
        return list(data["results"])

    async def balance(self) -> dict[str, Any]:
        """``GET /v1/balance``: the API key's user's balance (no key: the community pool's)."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        data: dict[str, Any] = await self._request("GET", "/v1/balance", headers=headers)
        return data

    # --- OpenAI API -----------------------------------------------------------------

    def _v1_headers(self, request_id: str | None) -> dict[str, str]:
        headers = {"X-Request-Id": request_id} if request_id else {}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def completion(
        self, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        headers = self._v1_headers(request_id)
        data: dict[str, Any] = await self._request(
            "POST", "/v1/completions", json={**body, "stream": False}, headers=headers
        )
        return data

    async def chat(self, body: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        headers = self._v1_headers(request_id)
        data: dict[str, Any] = await self._request(
            "POST", "/v1/chat/completions", json={**body, "stream": False}, headers=headers
        )
        return data

    async def stream(
        self, path: str, body: dict[str, Any], *, request_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield each SSE chunk (parsed JSON) of a streaming call; ends at ``[DONE]``.

        The stream's ``X-Mesh-*`` headers are yielded first as
        ``{"object": "mesh.headers", "headers": {...}}``.
        """
        headers = self._v1_headers(request_id)
        try:
            async with self._http.stream(
                "POST", self.base_url + path, json={**body, "stream": True}, headers=headers
            ) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise_for_error(r)
                yield {
                    "object": "mesh.headers",
                    "headers": {
                        k: v for k, v in r.headers.items() if k.lower().startswith("x-mesh-")
                    },
                }
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                        raise error_from_payload(502, chunk)
                    yield chunk
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _unreachable(self.base_url, exc) from exc
        except httpx.RemoteProtocolError as exc:
            raise UpstreamError(f"the stream from {self.base_url} was cut: {exc}") from exc


def fetch_json_sync(
    base_url: str, path: str, timeout: float = 5.0, *, ca_file: str | None = None
) -> Any:
    """A blocking GET for the few synchronous seed calls (``get_model_info``)."""
    try:
        r = httpx.get(
            base_url.rstrip("/") + path, timeout=timeout, verify=client_ssl_context(ca_file)
        )
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise _unreachable(base_url, exc) from exc
    except httpx.HTTPError as exc:
        raise MeshError(f"request to {base_url}{path} failed: {exc}") from exc
    raise_for_error(r)
    return r.json()
