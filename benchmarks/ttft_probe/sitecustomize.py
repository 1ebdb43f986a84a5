"""Benchmark-only: timestamps along one streamed request, for ``benchmarks/probe_ttft.py``.

``probe_ttft.py`` starts its meshes with this folder first on ``PYTHONPATH`` and
``LLM_MESH_BENCH_PROBE_DIR`` set; Python imports this module at start-up in the registry
and node processes. It wraps the functions a streamed request passes through and notes
``(name, time.monotonic_ns())`` for each (``CLOCK_MONOTONIC``: one clock for every
process on the box), in a list, written to ``$LLM_MESH_BENCH_PROBE_DIR/<pid>.txt`` once
the response has ended (not on the request's way). Wrappers that find no function of
that name (another tree) are skipped. The package itself has no such hooks.
"""

import os

_DIR = os.environ.get("LLM_MESH_BENCH_PROBE_DIR")

if _DIR:
    import functools
    import threading
    import time

    _now = time.monotonic_ns
    _events: list[tuple[str, int]] = []
    _note = _events.append
    _lock = threading.Lock()

    def _flush() -> None:
        # the main thread's (the event loop's) CPU profile: from the first response that
        # ends after the probe wrote ``profile_on`` (past the warm-up), written after each
        global _prof
        if _prof is not None:
            _prof.disable()
            _prof.dump_stats(os.path.join(_DIR, f"{os.getpid()}.prof"))
            _prof.enable()
        elif _profiling and os.path.exists(os.path.join(_DIR, "profile_on")):
            import cProfile

            _prof = cProfile.Profile(time.thread_time)
            _prof.enable()
        with _lock:
            rows, _events[:] = list(_events), []
        if rows:
            with open(os.path.join(_DIR, f"{os.getpid()}.txt"), "a") as f:
                f.write("".join(f"{n} {t}\n" for n, t in rows))

    def _wrap_async(cls: type, attr: str, before: str | None, after: str | None) -> None:
        orig = getattr(cls, attr, None)
        if orig is None:
            return

        @functools.wraps(orig)
        async def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            if before:
                _note((before, _now()))
            try:
                return await orig(*a, **k)
            finally:
                if after:
                    _note((after, _now()))

        setattr(cls, attr, wrapper)

    def _wrap_sync(cls: type, attr: str, before: str | None, after: str | None) -> None:
        orig = getattr(cls, attr, None)
        if orig is None:
            return

        @functools.wraps(orig)
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            if before:
                _note((before, _now()))
            try:
                return orig(*a, **k)
            finally:
                if after:
                    _note((after, _now()))

        setattr(cls, attr, wrapper)

    def _wrap_agen(cls: type, attr: str, each: str) -> None:
        orig = getattr(cls, attr, None)
        if orig is None:
            return

        @functools.wraps(orig)
        async def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            agen = orig(*a, **k)
            try:
                async for item in agen:
                    _note((each, _now()))
                    yield item
            finally:
                await agen.aclose()

        setattr(cls, attr, wrapper)

    def _wrap_gen(cls: type, attr: str, start: str, each: str) -> None:
        orig = getattr(cls, attr, None)
        if orig is None:
            return

        @functools.wraps(orig)
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            _note((start, _now()))
            gen = orig(*a, **k)
            try:
                for item in gen:
                    _note((each, _now()))
                    yield item
            finally:
                gen.close()

        setattr(cls, attr, wrapper)

    def _wrap_asgi(cls: type, prefix: str, flush: bool) -> None:
        """``cls.__call__(scope, receive, send)``: note each ``send`` (start, each body)."""
        orig = cls.__call__

        @functools.wraps(orig)
        async def wrapper(self, scope, receive, send):  # type: ignore[no-untyped-def]
            async def timed(message):  # type: ignore[no-untyped-def]
                kind = "start" if message["type"] == "http.response.start" else "body"
                _note((f"{prefix}_send_{kind}_begin", _now()))
                await send(message)
                _note((f"{prefix}_send_{kind}", _now()))

            try:
                await orig(self, scope, receive, timed)
            finally:
                _note((f"{prefix}_end", _now()))
                if flush:
                    _flush()

        cls.__call__ = wrapper  # type: ignore[method-assign]

    def _install_common() -> None:
        from LLM_Mesh.hot_routes import HotRoutesApp

        orig = HotRoutesApp.__call__

        @functools.wraps(orig)
        async def call(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope.get("type") == "http" and scope.get("path", "").startswith("/v1/"):
                _note(("asgi_in", _now()))
            await orig(self, scope, receive, send)

        HotRoutesApp.__call__ = call  # type: ignore[method-assign]

    def _install_gateway() -> None:
        from LLM_Mesh.registry import node_client, pipeline, relay, send_stream

        _wrap_async(pipeline.Pipeline, "serve", "gw_serve", None)
        _wrap_async(pipeline.Pipeline, "_stream", "gw_admitted", None)
        _wrap_async(node_client.AiohttpNodeClient, "stream", "gw_node_send", "gw_node_headers")
        _wrap_sync(send_stream.NodeStream, "_event", "gw_event", None)
        _wrap_agen(relay.SseRelay, "events", "gw_relay_yield")
        _wrap_asgi(relay.ProxyStream, "gw", flush=True)

    def _install_fine() -> None:
        """``LLM_MESH_BENCH_PROBE_FINE=1`` (``probe_ttft.py --fine``): the gateway's stages
        before the node is called, one by one."""
        from starlette.requests import Request
        from uvicorn.protocols.http import httptools_impl as uv

        from LLM_Mesh.core import gateway_auth
        from LLM_Mesh.registry import (
            access,
            admit,
            charge,
            parse,
            pipeline,
            relay,
            send,
            send_stream,
            settle_db_sqlite,
        )

        _wrap_sync(uv.HttpToolsProtocol, "data_received", "uv_data", None)
        _wrap_sync(uv.HttpToolsProtocol, "on_headers_complete", "uv_headers", None)
        _wrap_sync(uv.HttpToolsProtocol, "on_message_complete", "uv_msg", None)
        _wrap_async(uv.RequestResponseCycle, "run_asgi", "uv_run_asgi", None)
        _wrap_async(Request, "body", None, "f_body")
        for name in ("parse_json_object", "check_body", "read_extensions", "check_context",
                     "new_request_id"):  # fmt: skip
            _wrap_sync(parse, name, None, f"f_{name}")
        _wrap_sync(parse.CompletionRequest, "prompt_text", "f_validated", None)
        _wrap_sync(pipeline, "build_job", None, "f_job")
        _wrap_async(access.Authenticate, "__call__", None, "f_auth")
        _wrap_async(access.RateLimit, "__call__", None, "f_ratelimit")
        _wrap_sync(settle_db_sqlite, "sqlite_time", None, "f_sqlite_time")
        _wrap_sync(settle_db_sqlite.SqliteSettleDb, "_ops", "f_begun", "f_ops")
        _wrap_sync(settle_db_sqlite.SqliteSettleDb, "_transact", None, "f_committed")
        _wrap_async(charge.Charge, "__call__", None, "f_charged")
        _wrap_async(admit.IdempotencyCheck, "__call__", None, "f_idem")
        _wrap_async(access.AnonymousLast, "__call__", None, "f_anon")
        _wrap_sync(send_stream, "stream_payload", None, "f_payload")
        _wrap_sync(send_stream.NodeStream, "_sender", None, "f_sender")
        _wrap_async(send.Exchange, "_choose", None, "f_chosen")
        _wrap_async(send.Exchange, "_attempt", "f_attempt", "f_attempt_end")
        _wrap_async(send.Exchange, "send", None, "f_send_end")
        _wrap_async(send_stream.NodeStream, "open", None, "f_open_end")
        _wrap_async(pipeline.Pipeline, "_stream", None, "f_stream_made")
        _wrap_async(relay.ProxyStream, "__call__", "f_proxy_call", None)
        _wrap_sync(gateway_auth, "gateway_bytes", None, "f_gateway_bytes")
        _wrap_sync(gateway_auth, "_mac", None, "f_mac")  # a tree before the keyed HMAC
        _wrap_sync(gateway_auth, "_mac_from", None, "f_mac")
        _wrap_sync(send_stream, "forward_headers", None, "f_headers")

    def _install_node() -> None:
        from LLM_Mesh.node import app, gateway_guard, generation
        from LLM_Mesh.node.engines import llama_cpp

        _wrap_async(app._Handler, "handle", "node_handle", None)
        # the gateway's MAC or signature: headers first, then the body (check: older trees)
        for name, after in (("check", "node_auth"), ("precheck", "n_precheck"),
                            ("check_body", "node_auth")):  # fmt: skip
            if hasattr(gateway_guard.GatewayGuard, name):
                _wrap_sync(gateway_guard.GatewayGuard, name, None, after)
        _wrap_sync(app._Handler, "parse", None, "node_parsed")
        if os.environ.get("LLM_MESH_BENCH_PROBE_FINE") == "1":
            from starlette.requests import Request

            _wrap_async(Request, "body", None, "n_body")
            if hasattr(app, "_json_body"):
                _wrap_async(app, "_json_body", None, "n_json")
        orig_open = generation.Generation.open.__func__

        async def open_(cls, *a, **k):  # type: ignore[no-untyped-def]
            _note(("node_open", _now()))
            try:
                return await orig_open(cls, *a, **k)
            finally:
                _note(("node_opened", _now()))

        generation.Generation.open = classmethod(open_)  # type: ignore[assignment]
        _wrap_gen(llama_cpp.LlamaCppEngine, "_generate", "node_gen_start", "node_gen_item")
        _wrap_agen(app._Handler, "_sse", "node_sse_yield")
        _wrap_asgi(app._GenerationStream, "node", flush=True)
        try:
            import llama_cpp as lc
        except ImportError:
            return
        _wrap_sync(lc.Llama, "tokenize", "llama_tokenize", "llama_tokenized")
        orig_cc = lc.Llama.create_completion

        @functools.wraps(orig_cc)
        def create_completion(self, *a, **k):  # type: ignore[no-untyped-def]
            _note(("llama_cc", _now()))
            out = orig_cc(self, *a, **k)
            if not k.get("stream"):
                return out

            def chunks():  # type: ignore[no-untyped-def]
                try:
                    for c in out:
                        _note(("llama_chunk", _now()))
                        yield c
                finally:
                    out.close()

            return chunks()

        lc.Llama.create_completion = create_completion  # type: ignore[method-assign]

    _profiling = os.environ.get("LLM_MESH_BENCH_PROBE_PROFILE") == "1"
    _prof = None

    try:
        _install_common()
        import sys

        if "registry" in sys.argv:
            _install_gateway()
            if os.environ.get("LLM_MESH_BENCH_PROBE_FINE") == "1":
                _install_fine()
        elif "node" in sys.argv:
            _install_node()
    except Exception as exc:  # a probe that cannot install says so and stays out of the way
        import sys

        print(f"ttft_probe: not installed: {exc!r}", file=sys.stderr)
