"""Benchmark-only: the gateway → node authentication taken out, to measure what it costs.

``benchmarks/bench_gateway.py --no-auth-target`` starts one extra mesh (target ``ours-a0``)
with this folder first on ``PYTHONPATH`` and ``LLM_MESH_BENCH_NO_AUTH=1``; Python imports
this module at start-up in the registry and node processes, and it replaces the gateway's
per-request credential (``GatewaySigner.headers``: the session MAC or the Ed25519
signature) with no headers and the node's check (``GatewayGuard.check``) with a pass. The
package itself has no such switch: this never runs outside that benchmark target.
"""

import os

if os.environ.get("LLM_MESH_BENCH_NO_AUTH") == "1":
    from LLM_Mesh.core.gateway_auth import GatewaySigner
    from LLM_Mesh.node.gateway_guard import GatewayGuard

    GatewaySigner.headers = lambda self, *a, **k: {}  # type: ignore[method-assign]
    GatewayGuard.check = lambda self, *a, **k: None  # type: ignore[method-assign]
