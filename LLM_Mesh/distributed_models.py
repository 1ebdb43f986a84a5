"""The seed's network model registry: ask the mesh for a model's answer.

    import asyncio
    from LLM_Mesh.distributed_models import (
        initialize_distributed_models, model_registry, get_model_response)

    asyncio.run(initialize_distributed_models())
    result = await get_model_response(
        model_name="code-llama-7b", prompt="def fibonacci(n):", task_type="python")
    print(model_registry.get_model_info())
    print(model_registry.get_model_info("code-llama-7b"))
    await model_registry.health_check_all_hosts()

Clients find the registry through ``LLM_MESH_REGISTRY_URL`` (default
``http://127.0.0.1:8800``), read when the registry is first used, never at
import. A named model that no healthy node hosts raises
:class:`~LLM_Mesh.errors.ModelUnavailable` naming the models that are up; with
``fallback=True`` another model of the same specialty answers instead and the
result says so (``fallback_from``).

``python -m LLM_Mesh.distributed_models`` prints the network's status and exits
0, or says the registry is unreachable and exits 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from LLM_Mesh.bounded_http import rows
from LLM_Mesh.client import MeshClient, fetch_json_sync, gateway_urls
from LLM_Mesh.client_replicas import ReplicaMemory
from LLM_Mesh.config import Settings
from LLM_Mesh.core.client_retry import NO_KEY_HINT, SEED_ADVICE, SEED_NO_KEY_HINT, fitted_advice
from LLM_Mesh.core.limits import unsent_too_large
from LLM_Mesh.core.model_choice import (
    best_for_task,
    fallback_for,
    mapping_rows,
    resting_said,
    task_best,
)
from LLM_Mesh.core.registry_urls import registry_url_list
from LLM_Mesh.errors import (
    InvalidApiKey,
    InvalidCredential,
    InvalidRequest,
    MeshError,
    ModelNotFound,
    ModelUnavailable,
    RegistryUnreachable,
    UpstreamTimeout,
)
from LLM_Mesh.model_response import ModelResponse
from LLM_Mesh.plain_http import PlainHttpNotice
from LLM_Mesh.receipt_files import keep_for_key, keeps

__all__ = [
    "DistributedModelRegistry",
    "ModelResponse",
    "get_model_response",
    "initialize_distributed_models",
    "main",
    "model_registry",
]

DEFAULT_MAX_TOKENS = 128


class DistributedModelRegistry:
    """The client's view of the network: which models are up, on which nodes.

    ``settings`` (or ``registry_url``) is optional: without it the registry URL
    comes from the environment the first time it is needed. ``replica_memory``: where the
    replica that answered is remembered across processes (the CLI's; none by default).
    """

    SNAPSHOT_TTL_S = 5.0
    #: a 504's advice to this caller (``core/client_retry``): these calls do not stream
    deadline_advice = SEED_ADVICE
    #: a wrong or revoked key's 401 says how this caller goes without one, not the HTTP
    #: header (``core/client_retry``; ``llm-mesh ask``: its flag)
    no_key_hint = SEED_NO_KEY_HINT
    #: a body over this is refused unsent (``ask``: ``LLM_MESH_MAX_BODY_BYTES``); None: sent
    max_body_bytes: int | None = None

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Any = time.monotonic,
        api_key: str | None = None,
        replica_memory: ReplicaMemory | None = None,
        keep_receipts: bool | None = None,
        warn_plain_http: bool = True,
    ) -> None:
        self._settings = settings
        # one WARNING for this object when a credential first goes over plain http to
        # another machine (plain_http.py); not warn_plain_http: the caller says it (the CLI)
        self._warn = warn_plain_http
        self._notice: PlainHttpNotice | None = None
        self._keep = keep_receipts  # a keyed answer's receipt kept (receipt_files.keeps)
        self._memory = replica_memory  # another process's answering replica (the CLI's)
        self._api_key = api_key
        self._registry_url = registry_url
        self._http = http_client
        self._clock = clock
        self._models: list[dict[str, Any]] | None = None
        self._nodes: list[dict[str, Any]] | None = None
        self._snapshot_at = 0.0
        self._answered: str | None = None  # the gateway that answered last (replicas)

    @property
    def registry_url(self) -> str:
        """The registry + gateway URL, or several as ``"URL,URL,..."`` (replicas: the client
        fails over between them, ``LLM_Mesh/client.py``). Read as the setting is
        (``core/registry_urls.py``): the gateway's OpenAI base URL ``.../v1`` names its
        registry (found 2026-12-05, polish32: given here it was taken as it, and every
        request went to ``/v1/mesh/...`` and ``/v1/v1/...``)."""
        if self._registry_url:
            return ",".join(registry_url_list(self._registry_url, "registry_url"))
        if self._settings is None:
            self._settings = Settings.from_env()
        return ",".join(self._settings.registry_urls)

    @property
    def api_key(self) -> str | None:
        """The API key requests carry (``api_key``, else ``$LLM_MESH_API_KEY``); ``None``:
        anonymous."""
        if self._api_key:
            return self._api_key
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings.api_key

    @property
    def notice(self) -> PlainHttpNotice:
        """This object's one plain-http warning, shared by every client it makes."""
        if self._notice is None:
            urls = gateway_urls(self.registry_url)
            self._notice = PlainHttpNotice(urls, quiet=not self._warn)
        return self._notice

    @property
    def ca_file(self) -> str | None:
        """The CA file an https registry is verified with besides the system's (settings)."""
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings.registry_ca

    def configure(
        self, *, registry_url: str | None = None, settings: Settings | None = None
    ) -> None:
        """Point this registry object at another registry."""
        if settings is not None:
            self._settings = settings
        self._registry_url = registry_url or self._registry_url
        self._models = self._nodes = None
        self._notice = None

    @asynccontextmanager
    async def client(self, *, stream_max_s: float | None = None) -> AsyncIterator[MeshClient]:
        """A :class:`MeshClient` for a call or two (``llm-mesh ask --stream``'s stream too)
        that begins at the gateway that answered this registry's last call."""
        # A fresh AsyncClient per call unless one was injected: the seed calls
        # asyncio.run() more than once, and a client cannot outlive its loop.
        # Each call begins at the gateway that answered the last one (found 2026-12-05: with
        # the first of two replicas hung, every call waited ~9 s on it again, and
        # mesh_manager.handle_task, two calls, ~19 s).
        async with MeshClient(
            self.registry_url, http_client=self._http, api_key=self.api_key,
            ca_file=self.ca_file, stream_max_s=stream_max_s, memory=self._memory,
            notice=self.notice,
        ) as c:  # fmt: skip
            c.prefer(self._answered)
            try:
                yield c
            finally:
                self._answered = c.base_url

    # --- snapshot of the network ------------------------------------------------------

    async def refresh(self) -> None:
        async with self.client() as c:
            self._models = await c.models()
            self._nodes = await c.nodes()
        self._snapshot_at = self._clock()

    def _answer(self, base_url: str) -> None:
        self._answered = base_url

    def _refresh_sync(self) -> None:
        # read as MeshClient.models()/nodes() read them: a list of objects with their ids
        # (else UpstreamError in words: found 2026-12-04, KeyError/TypeError in the caller)
        # Each begins at the gateway that answered last, as the async calls do (found
        # 2026-12-05: at the first URL each time, so ~5 s a fetch on a hung first replica).
        url, ca = self.registry_url, self.ca_file

        def fetch(path: str, read: Any) -> Any:
            return fetch_json_sync(
                url,
                path,
                ca_file=ca,
                read=read,
                prefer=self._answered,
                answered=self._answer,
                memory=self._memory,
            )

        self._models = fetch("/mesh/models", rows("models", "id"))
        self._nodes = fetch("/mesh/nodes", rows("nodes", "node_id"))
        self._snapshot_at = self._clock()

    async def initialize(self) -> dict[str, Any]:
        """Connect to the registry and load the network's state; returns a summary."""
        await self.refresh()
        return self._summary()

    def _summary(self) -> dict[str, Any]:
        models = self._models or []
        nodes = self._nodes or []
        return {
            "registry_url": self.registry_url,
            "models_available": sorted(m["id"] for m in models if m.get("available")),
            "models_simulated": sorted(m["id"] for m in models if m.get("simulated")),
            "models_known": len(models),
            "nodes_total": len(nodes),
            "nodes_healthy": sum(1 for n in nodes if n.get("healthy")),
        }

    def available_models(self) -> list[str]:
        return sorted(m["id"] for m in (self._models or []) if m.get("available"))

    def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        """Catalog and live status: of every model, or of ``model_name``.

        Uses the last snapshot if it is younger than 5 s, else asks the registry
        (a short blocking call, so it works from plain scripts too).
        """
        if self._models is None or self._clock() - self._snapshot_at > self.SNAPSHOT_TTL_S:
            self._refresh_sync()
        models = {m["id"]: m for m in self._models or []}
        nodes = self._nodes or []

        def info(m: dict[str, Any]) -> dict[str, Any]:
            hosting = []
            for n in nodes:
                listed = n.get("models")  # a node's rows: anything a hostile gateway sent
                hosted = next((h for h in mapping_rows(listed) if h.get("id") == m["id"]), None)
                if hosted is None:
                    continue
                hosting.append(
                    {
                        "node_id": n["node_id"],
                        "keeps_no_prompts": n.get("keeps_no_prompts"),
                        "region": n.get("region"),
                        "healthy": n.get("healthy"),
                        "state": n.get("state"),
                        "simulated": bool(hosted.get("simulated", False)),
                        "in_flight": n.get("in_flight"),
                        "latency_ms_ewma": n.get("latency_ms_ewma"),
                        "health_score": n.get("health_score"),
                    }
                )
            return {**m, "simulated": bool(m.get("simulated", False)), "hosts": hosting}

        if model_name is None:
            return {
                **self._summary(),
                "models": {mid: info(m) for mid, m in models.items()},
            }
        if model_name not in models:
            raise ModelNotFound(
                f"model {model_name!r} is not in the catalog and no node hosts it; "
                f"known models: {', '.join(sorted(models))}",
                param="model",
            )
        return info(models[model_name])

    async def health_check_all_hosts(self) -> list[dict[str, Any]]:
        """Run one active health-check pass over every host now; per-host results.

        An admin operation: it sends the admin key, ``LLM_MESH_ADMIN_KEY`` (the user's
        explicit choice: sent to the configured registry URL), else
        ``$LLM_MESH_HOME/admin.key``, which ``llm-mesh up`` makes on this machine, sent only
        to the registry that made it (the URLs it recorded beside the key); another
        registry without ``LLM_MESH_ADMIN_KEY``: :class:`~LLM_Mesh.errors.InvalidCredential`
        naming it, before anything is sent (found 2026-12-03: the file's key went to any
        ``LLM_MESH_REGISTRY_URL``, a remote gateway's included). And only once the program
        at the URL proved it holds that registry's key (``admin_proof.py``; found
        2026-12-03: with the mesh down, any program on its port received the key);
        :class:`~LLM_Mesh.errors.InvalidCredential` naming the cause when it does not.
        """
        from LLM_Mesh.secret_files import admin_key_for, admin_key_home_urls, admin_key_missing

        if self._settings is None:
            self._settings = Settings.from_env()
        urls = gateway_urls(self.registry_url)
        admin = admin_key_for(self._settings, urls)
        if admin is None:
            raise InvalidCredential(admin_key_missing(urls, admin_key_home_urls(self._settings)))
        async with MeshClient(
            self.registry_url, http_client=self._http, admin_key=admin.key,
            admin_registry_key=admin.registry_key, ca_file=self.ca_file, memory=self._memory,
            notice=self.notice,
        ) as c:  # fmt: skip
            c.prefer(self._answered)
            results = await c.health_check()
            self._answered = c.base_url
        await self.refresh()
        return results

    # --- answers ------------------------------------------------------------------

    async def get_response(
        self,
        model_name: str | None,
        prompt: str,
        task_type: str | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        stop: list[str] | None = None,
        fallback: bool = False,
        chat: bool = False,
        request_id: str | None = None,
        avoid_regions: Sequence[str] = (),
        strict_regions: bool = False,
        allow_prompt_keeping: bool = False,
    ) -> ModelResponse:
        """Route ``prompt`` to the best node hosting ``model_name`` and return the answer.

        ``model_name=None`` lets task routing choose (see ``mesh_manager``): the best
        model up for ``task_type``, else, when the gateway has none of its nodes within the
        request's constraints (``avoid_regions``, the key's regions), the best of those
        it names.
        ``avoid_regions``: never a node in these regions (``eu`` covers ``eu-west``);
        ``strict_regions``: nor one that declared no region.
        ``allow_prompt_keeping``: also a node that may keep prompts (``keeps_no_prompts``
        false in its registration, or undeclared on an engine other than ``llama-cpp``/
        ``sim``; held out by default). Without it the prompt goes only to nodes whose
        operator declared that they keep none: the operator's word, which the mesh
        cannot check (README, "Privacy").
        ``chat=True`` sends the prompt as a user message (the node applies the
        model's chat template); otherwise it is a raw completion prompt, which is
        what code completion (``def fibonacci(n):``) wants.
        """
        by_task = model_name is None
        if model_name is None:
            await self.refresh()
            model_name = self.best_model_for_task(task_type)
        body: dict[str, Any] = {"model": model_name, "max_tokens": max_tokens}
        if temperature is not None:
            body["temperature"] = temperature
        if stop:
            body["stop"] = stop
        if task_type:
            body["task_type"] = task_type
        if avoid_regions:
            body["avoid_regions"] = (  # one region as a string too, never its letters
                [avoid_regions] if isinstance(avoid_regions, str) else list(avoid_regions)
            )
        if strict_regions:
            body["strict_regions"] = True
        if allow_prompt_keeping:
            body["allow_prompt_keeping"] = True
        try:
            return await self._ask(body, prompt, chat, task_type, model_name, request_id)
        except ModelUnavailable as exc:
            if by_task:  # no model was asked for: the task's best within the constraints
                alt = self.task_choice(exc, task_type, model_name)
                return await self._ask(
                    {**body, "model": alt}, prompt, chat, task_type, alt, request_id
                )
            alt = self.fallback_model(exc, model_name, task_type, fallback=fallback)
            res = await self._ask(
                {**body, "model": alt}, prompt, chat, task_type, model_name, request_id
            )
            res.fallback_from = model_name
            return res

    async def _ask(
        self,
        body: dict[str, Any],
        prompt: str,
        chat: bool,
        task_type: str | None,
        requested: str,
        request_id: str | None,
    ) -> ModelResponse:
        if chat:
            body = {**body, "messages": [{"role": "user", "content": prompt}]}
        else:
            body = {**body, "prompt": prompt}
        if self.max_body_bytes is not None:  # as MeshClient sends it, with its "stream"
            too_large = unsent_too_large({**body, "stream": False}, prompt, self.max_body_bytes)
            if too_large is not None:
                raise too_large
        try:
            async with self.client() as c:
                if chat:
                    out = await c.chat(body, request_id=request_id)
                else:
                    out = await c.completion(body, request_id=request_id)
        except InvalidApiKey as exc:  # "send no Authorization header": this caller sends it
            if NO_KEY_HINT not in exc.message:
                raise
            told = InvalidApiKey(
                exc.message.replace(NO_KEY_HINT, self.no_key_hint), param=exc.param
            )
            told.request_id = exc.request_id
            raise told from None
        except UpstreamTimeout as exc:  # the gateway's "stream: true" fits no call here
            said = fitted_advice(exc.message, self.deadline_advice)
            if said == exc.message:
                raise
            fitted = UpstreamTimeout(said, param=exc.param, **exc.extra)
            fitted.request_id = exc.request_id
            raise fitted from None
        res = ModelResponse.from_openai(out, task_type=task_type, requested=requested)
        if self.api_key and res.receipt is not None and keeps(self._keep):
            if self._settings is None:
                self._settings = Settings.from_env()
            res.receipt_file = keep_for_key(self._settings.home, self.api_key, res.receipt)
        return res

    def fallback_model(
        self,
        exc: ModelUnavailable,
        model: str,
        task_type: str | None,
        *,
        fallback: bool,
        flag: str = "fallback=True",
    ) -> str:
        """The model that answers when ``model`` is not up (``exc``, naming those that are):
        one of the same specialty, with ``fallback``; else ``exc`` again, saying which model
        ``flag`` (how the caller spells the option) would have got an answer from."""
        alt = fallback_for(model, task_type, exc.available)
        if fallback and alt is not None:
            return alt
        if fallback:
            why = "no model of the same specialty is up for fallback"
        elif alt is not None:  # say how to get an answer from what is up
            why = f"with {flag} {alt} answers (same specialty)"
        else:
            raise exc
        raise ModelUnavailable(
            f"{exc.message}; {why}",
            model=model,
            available=exc.available,
            retry_after=exc.retry_after,
        ) from exc

    def task_choice(self, exc: ModelUnavailable, task_type: str | None, tried: str) -> str:
        """The best model for ``task_type`` among those ``exc`` names as up within the
        request's constraints, ``tried`` (the task's first choice, which the gateway had no
        node for) left out; else ``exc`` again. Found 2026-12-05: ``llm-mesh ask --task chat
        --avoid eu`` picked ``mistral-7b``, served only in ``eu-west``, and failed ("with
        --fallback gemma-3-270m answers") though no model had been asked for."""
        best = task_best(task_type, exc.available, tried)
        if best is None:
            raise exc
        return best

    def best_model_for_task(self, task_type: str | None) -> str:
        """The best model that is up for ``task_type`` (task policy in ``core.tasks``)."""
        best = best_for_task(task_type, self.available_models())
        if best is None:
            raise ModelUnavailable(
                "no model is up on the network right now" + resting_said(self._nodes),
                available=self.available_models(),
            )
        return best


model_registry = DistributedModelRegistry()


async def initialize_distributed_models(registry_url: str | None = None) -> dict[str, Any]:
    """Connect ``model_registry`` to the network; returns a summary of what is up.

    Raises RegistryUnreachable (with how to start one) when nothing answers.
    """
    if registry_url:
        model_registry.configure(registry_url=registry_url)
    return await model_registry.initialize()


async def get_model_response(
    model_name: str | None = None,
    prompt: str = "",
    task_type: str | None = None,
    **options: Any,
) -> ModelResponse:
    """Ask the network: routes to the best node hosting ``model_name``.

    Options: ``max_tokens``, ``temperature``, ``stop``, ``fallback``, ``chat``,
    ``request_id``, ``avoid_regions``, ``strict_regions``, ``allow_prompt_keeping``. Raises ModelUnavailable when no healthy node hosts the
    model (naming those that are up), unless ``fallback=True`` finds another
    model of the same specialty.
    """
    if not prompt:
        raise InvalidRequest("get_model_response needs a non-empty prompt", param="prompt")
    return await model_registry.get_response(model_name, prompt, task_type, **options)


USAGE = """\
Print the network's status: the models up and the nodes hosting them, from the
registry at $LLM_MESH_REGISTRY_URL (default http://127.0.0.1:8800; start one with
`llm-mesh up`). The same as `llm-mesh status`.

From Python:
  from LLM_Mesh.distributed_models import get_model_response, model_registry
  result = await get_model_response("gemma-3-270m", "def fibonacci(n):", task_type="python")
  model_registry.get_model_info()                  # every model, or one: ("gemma-3-270m")
  await model_registry.health_check_all_hosts()
With LLM_MESH_API_KEY, LLM_MESH_SAVE_RECEIPTS=1 keeps each answer's receipt (no
prompt, no text) for `llm-mesh ledger statement`; by default nothing is kept.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m LLM_Mesh.distributed_models``: print the network's status (``--help``:
    what it does, and the Python API; found 2026-12-04: ``--help`` was ignored and the
    status tried, an unreachable registry's error the only answer)."""
    import argparse

    from LLM_Mesh.cli.render import print_status, terminal_text

    parser = argparse.ArgumentParser(
        prog="python -m LLM_Mesh.distributed_models",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an unknown argument (2): said by argparse
        return int(exc.code or 0)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"LLM Mesh: bad setting: {exc}", file=sys.stderr)
        return 1
    registry = DistributedModelRegistry(settings)
    try:
        info = registry.get_model_info()
    except RegistryUnreachable as exc:
        # one sentence (found 2026-12-07, newuser43: "registry unreachable. no LLM Mesh ...")
        print(f"LLM Mesh: registry unreachable: {terminal_text(exc)}", file=sys.stderr)
        return 1
    except MeshError as exc:  # a gateway's words: no ESC sequence (found 2026-12-05)
        print(f"LLM Mesh: {terminal_text(exc)}", file=sys.stderr)
        return 1
    print_status(info, registry._nodes or [], answered=registry._answered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
