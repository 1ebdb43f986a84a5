"""The client's side of the registry's identity proof, before the home's admin key goes out.

``$LLM_MESH_HOME/admin.key`` goes only to the URLs its registry recorded
(``secret_files.admin_key_for``), and to one of them only once the program listening
there proved it holds the registry key recorded beside them: :func:`prove` asks
``GET {url}/mesh/identity`` to sign a fresh random nonce for that URL
(``core/registry_identity.py``) and checks the signature with the recorded key. Found
2026-12-03: while the mesh was down, any local program could bind the recorded port
(``127.0.0.1:8800``) and receive the admin key from the next ``health_check_all_hosts()``
or ``registry canary run``. A proof that fails sends nothing more and raises
:class:`~LLM_Mesh.errors.InvalidCredential` naming the cause.

Each admin request is proven afresh, just before it is sent: no proof is kept (found
2026-12-03, review: a proof kept 30 s sent the key to a program that took the port within
30 s of the registry's stop; an admin call is rare, a proof one loopback round trip and one
signature). ``LLM_MESH_ADMIN_KEY`` (the user's explicit choice) asks
for no proof: ``MeshClient`` is then given no registry key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx

from LLM_Mesh.bounded_http import call, json_or_none
from LLM_Mesh.core.admin_key_scope import registry_origin
from LLM_Mesh.core.registry_identity import NONCE_BYTES, check_answer, identity_query
from LLM_Mesh.errors import InvalidCredential

__all__ = ["IDENTITY_PATH", "prove"]

IDENTITY_PATH = "/mesh/identity"
ANSWER_BYTES = 16 << 10  # the answer is ~250 bytes


def _refused(base: str, why: str) -> InvalidCredential:
    return InvalidCredential(
        f"the admin key was not sent to {base}: the program listening there did not prove it "
        f"is this home's registry ({why}). If the mesh is down, another program may be "
        "listening on its port: start the mesh (llm-mesh up) and try again; for another "
        "registry, set LLM_MESH_ADMIN_KEY"
    )


async def prove(
    http: httpx.AsyncClient,
    base: str,
    registry_key: str,
    *,
    deadline_s: float,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> None:
    """Return once the program at ``base`` proved it holds ``registry_key`` (base64url), to
    a nonce made now (nothing kept: module docstring); else raise :class:`InvalidCredential` (transport errors
    are ``httpx``'s, for the caller to report as any other call's)."""
    origin = registry_origin(base)
    if origin is None:
        raise _refused(base, "not an http(s) URL")
    nonce = random_bytes(NONCE_BYTES)
    r = await call(
        http, "GET", base + IDENTITY_PATH, ANSWER_BYTES, deadline_s=deadline_s,
        follow_redirects=False, params=identity_query(origin, nonce),
    )  # fmt: skip
    answer: Any = json_or_none(r)  # (not JSON, or nested too deep: None)
    why: str | None
    if r.status_code == 429:  # the registry's own limit (or an impostor's): no key either way
        wait = r.headers.get("Retry-After", "")
        raise InvalidCredential(
            f"the admin key was not sent to {base}: it refused to prove it is this home's "
            f"registry for now (HTTP 429: too many proofs asked from this address); try again"
            + (f" in {wait} s" if wait.isdigit() and len(wait) <= 5 else " in a minute")
        )
    if r.status_code != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        why = (
            f"it answered HTTP {r.status_code} to GET {IDENTITY_PATH}"
            + (f": {said[:200]!r}" if isinstance(said, str) else "")
            + (
                " (a registry older than the identity proof? restart the mesh)"
                if r.status_code == 404
                else ""
            )
        )
    else:
        why = check_answer(registry_key, origin, nonce, answer)
    if why is not None:
        raise _refused(base, why)
