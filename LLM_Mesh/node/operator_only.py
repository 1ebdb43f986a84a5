"""The node's rule for its operator's endpoints (``/mesh/info``, ``/mesh/earnings``,
``/mesh/admin/*``): a loopback client, addressed to a name of this machine, not from a web
page of another site (``core/browser_origin.py``: DNS rebinding, CSRF)."""

from __future__ import annotations

from fastapi import Request

from LLM_Mesh.core.browser_origin import loopback_refusal
from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.json_answer import JSONAnswer

__all__ = ["operator_refusal"]


def operator_refusal(request: Request, own_names: tuple[str, ...]) -> JSONAnswer | None:
    """403 unless the request is the operator's: a loopback client, addressed to a name of
    this machine and not from a web page of another site (``core/browser_origin.py``:
    DNS rebinding, CSRF; ``own_names``: ``Settings.local_names``); else ``None``."""
    if not is_loopback(request.client.host if request.client else None):
        why = "this endpoint answers loopback clients only (the node's operator)"
    else:
        refused = loopback_refusal(request.headers, own_names)
        if refused is None:
            return None
        why = f"this endpoint answers the node's operator, not {refused}"
    err = {"message": why, "type": "permission_error", "param": None, "code": "forbidden"}
    return JSONAnswer({"error": err}, status_code=403)
