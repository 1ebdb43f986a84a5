"""Where the admin key in ``$LLM_MESH_HOME/admin.key`` may be sent: pure rules, no I/O.

The registry that uses a home (``llm-mesh up``'s, ``llm-mesh registry serve``'s, an
in-process one) records beside the key, at each start, the registry URLs it was started
with (``admin.key.registry``: :mod:`LLM_Mesh.secret_files`). A client sends the file's key
only when every URL it would call is one of those (:func:`file_key_may_go`); found
2026-12-03: ``model_registry.health_check_all_hosts()`` sent it to whatever
``LLM_MESH_REGISTRY_URL`` named, so a user who once ran a local mesh and then pointed at a
remote gateway handed that gateway the local mesh's admin key. ``LLM_MESH_ADMIN_KEY`` is
the user's explicit choice and goes to the configured URLs. ``registry serve`` also records
the URLs it serves on (:func:`served_urls`; found 2026-12-03, review: ``--port N`` recorded
only the default ``http://127.0.0.1:8800``, so its own operator was refused the key).
Beside the URLs the registry records its public key (a ``key=<base64url>`` line:
:func:`recorded_key`), and the client sends the key to a URL only once that URL proved it
holds the matching private key (``core/registry_identity.py``; found 2026-12-03: while the
mesh was down, any local program could bind a recorded port and receive the key).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORT = {"http": 80, "https": 443}
KEY_PREFIX = "key="  # the line of the record that holds the registry's public key


def registry_origin(url: str) -> str | None:
    """``url`` as compared: scheme and host in lower case, the port explicit, no user info,
    query or trailing ``/``; ``None`` if it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORT or not host:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORT[scheme]}{parts.path.rstrip('/')}"


def served_urls(host: str, port: int, tls: bool) -> tuple[str, ...]:
    """The URL a registry listening on ``host``:``port`` answers at on this machine: the host
    given, or for every address the loopback one of its family (``0.0.0.0``: 127.0.0.1,
    ``::``: ``[::1]``). No other name: ``localhost`` may resolve to another family's
    address, where another program (an ssh tunnel) may listen on that port."""
    scheme = "https" if tls else "http"
    bare = host.strip("[]").lower()
    name = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(bare)
    if name is None:
        name = f"[{bare}]" if ":" in bare else bare
    return (f"{scheme}://{name}:{port}",)


def file_key_may_go(urls: Iterable[str], recorded: Iterable[str]) -> bool:
    """May the home's admin key file be sent to ``urls`` (each one of them, replicas
    included)? Only if every one is a registry URL ``recorded`` beside the key."""
    known = {o for o in map(registry_origin, recorded) if o is not None}
    wanted = [registry_origin(u) for u in urls]
    return bool(wanted) and all(o is not None and o in known for o in wanted)


def recorded_key(recorded: Iterable[str]) -> str | None:
    """The registry public key (base64url) in the record's words, if there is exactly one
    (a record written before registries recorded their key has none)."""
    keys = {w[len(KEY_PREFIX) :] for w in recorded if w.startswith(KEY_PREFIX)}
    return next(iter(keys)) if len(keys) == 1 else None
