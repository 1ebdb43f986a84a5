"""Benchmark-only: the gateway → node authentication taken out, to measure what it costs.

``benchmarks/bench_gateway.py --no-auth-target`` starts one extra mesh (target ``ours-a0``)
with this folder first on ``PYTHONPATH`` and ``LLM_MESH_BENCH_NO_AUTH=1``; Python imports
this module at start-up in the registry and node processes, and it replaces the gateway's
per-request credential (``GatewaySigner.headers``: the session MAC or the Ed25519
signature) with no headers and the node's checks with a pass: ``GatewayGuard.precheck``
(the headers, before the body is read; ``None``: nothing more to check) and
``GatewayGuard.check_body`` (the MAC or signature over the body), the two that
``node/app.py`` calls (``check``, both in one, too). The package itself has no such
switch: this never runs outside that benchmark target. Left in: the body's SHA-256 the send
stage takes for those headers (``send.py``, ``send_stream.py``), about a µs for a small body.

Found 2026-12-05: only ``check`` was replaced, which the node had stopped calling (it calls
``precheck`` and ``check_body`` since the headers are checked before the body is read), so
``ours-a0``'s node refused every request (503 "no gateway signature") and the option
failed; ``tests/benchmarks/test_smoke.py`` runs the target now.
"""

import os

if os.environ.get("LLM_MESH_BENCH_NO_AUTH") == "1":
    from LLM_Mesh.core.gateway_auth import GatewaySigner
    from LLM_Mesh.node.gateway_guard import GatewayGuard

    GatewaySigner.headers = lambda self, *a, **k: {}  # type: ignore[method-assign]
    GatewayGuard.precheck = lambda self, *a, **k: None  # type: ignore[method-assign]
    GatewayGuard.check_body = lambda self, *a, **k: None  # type: ignore[method-assign]
    GatewayGuard.check = lambda self, *a, **k: None  # type: ignore[method-assign]
