"""Reading one setting's value from the environment: the parsers behind
:meth:`LLM_Mesh.config.Settings.from_env` (split from ``config.py``, rot42).

Each takes the environment as a mapping (``Settings.from_env`` passes ``os.environ`` or a
test's dict) and returns the value or raises ``ValueError`` naming the variable and what it
must be; none reads ``os.environ`` itself (``config.py`` stays the one reader). Light: the
node's hardware detection reads settings under a bare system Python
(``setup-node-operator.sh --dry-run``), so what needs ``cryptography`` is imported inside
the one parser that needs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.registry_urls import split_urls
from LLM_Mesh.core.validation import ascii_digits

__all__ = [
    "LIMIT_TOP",
    "LOG_FORMATS",
    "env_bool",
    "env_float",
    "env_int",
    "env_limit",
    "env_limits",
    "env_path",
    "env_seconds_up_to",
    "env_stream_interval",
    "env_whole",
    "env_witness_urls",
    "env_witnesses",
    "log_format",
]

LOG_FORMATS = ("text", "json")
#: the most a per-minute limit may be set to (:func:`env_limit`): far past any process
LIMIT_TOP = 10**9


def env_limit(env: Mapping[str, str], key: str, default: int | None) -> int | None:
    """A per-minute limit from ``env[key]``: a whole number in ASCII digits up to
    :data:`LIMIT_TOP`, ``0`` for none; else ``default``. Found 2026-12-07 (attack45): any
    ``int()`` was taken, ``LLM_MESH_EARNINGS_READS_PER_MIN=1`` and 400 zeros started a
    registry whose every earnings read was a 500 (a bucket's ``float`` overflowed), and
    ``٦٠`` read as 60."""
    raw = (env.get(key) or "").strip().replace("_", "")
    if raw == "":
        return default
    if not ascii_digits(raw) or len(raw) > len(str(LIMIT_TOP)) or int(raw) > LIMIT_TOP:
        raise ValueError(
            f"{key} must be a whole number from 0 to {LIMIT_TOP} (0: no limit), "
            f"got {env.get(key)!r}"
        )
    return int(raw) or None


def env_float(
    env: Mapping[str, str], key: str, default: float, *, zero_is_off: bool = False
) -> float:
    """A positive, finite number of seconds from ``env[key]``, or ``default``; with
    ``zero_is_off``, 0 too (it turns the setting off)."""
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if zero_is_off and math.isfinite(value) and value == 0:
        return 0.0
    if not math.isfinite(value) or value <= 0:
        bound = "a number >= 0 (0: off)" if zero_is_off else "a positive number"
        raise ValueError(f"{key} must be {bound}, got {raw!r}")
    return value


def env_seconds_up_to(env: Mapping[str, str], key: str, default: float, top: float) -> float:
    """A number of seconds more than 0 and at most ``top`` from ``env[key]``, or ``default``;
    any other number refused naming that whole range (0 was "a positive number" before,
    86401 the range: newuser42)."""
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if not (math.isfinite(value) and 0 < value <= top):
        raise ValueError(f"{key} must be more than 0 and at most {top:g} (seconds), got {raw!r}")
    return value


def env_stream_interval(env: Mapping[str, str]) -> float | None:
    """``LLM_MESH_STREAM_INTERVAL_S``: seconds, 0 to 1; None when unset."""
    key = "LLM_MESH_STREAM_INTERVAL_S"
    if (env.get(key) or "").strip() == "":
        return None
    value = env_float(env, key, 0.0, zero_is_off=True)
    if value > 1.0:
        raise ValueError(f"{key} must be between 0 and 1 (seconds), got {env[key]!r}")
    return value


def env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case) from ``env[key]``, or ``default``."""
    raw = (env.get(key) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{key} must be true or false, got {env.get(key)!r}")


def log_format(value: str | None) -> str:
    """``text`` or ``json`` (any case); empty: ``text``."""
    fmt = (value or "").strip().lower() or "text"
    if fmt not in LOG_FORMATS:
        raise ValueError(f"LLM_MESH_LOG_FORMAT must be text or json, got {value!r}")
    return fmt


def env_path(value: str | None) -> Path | None:
    """A file path (``~`` expanded); empty: none."""
    text = (value or "").strip()
    return Path(text).expanduser() if text else None


def env_whole(env: Mapping[str, str], key: str, default: int, top: int | None = None) -> int:
    """A whole number >= 0 (at most ``top``) from ``env[key]``, or ``default``."""
    raw = (env.get(key) or "").strip().replace("_", "")
    if raw == "":
        return default
    # digits past Python's own bound for int() (4,300) refused in these words, naming the
    # variable (found 2026-12-07, attack45: Python's "Exceeds the limit" named none)
    if not ascii_digits(raw) or len(raw) > 4000 or (top is not None and int(raw) > top):
        bound = f" (0 to {top})" if top is not None else " (>= 0)"
        raise ValueError(f"{key} must be a whole number{bound}, got {env.get(key)!r}")
    return int(raw)


def env_int(env: Mapping[str, str], key: str, default: int, top: int | None = None) -> int:
    """A whole number >= 1 (at most ``top``) from ``env[key]`` (``"3"`` or ``"3.0"``), or
    ``default``."""
    value = env_float(env, key, default)
    if value != int(value) or (top is not None and value > top):
        bound = f" (1 to {top})" if top is not None else ""
        raise ValueError(f"{key} must be a whole number{bound}, got {env.get(key)!r}")
    return int(value)


_LIMIT_ENV = {
    "max_body_bytes": "LLM_MESH_MAX_BODY_BYTES",
    "max_json_depth": "LLM_MESH_MAX_JSON_DEPTH",
    "max_json_containers": "LLM_MESH_MAX_JSON_CONTAINERS",
    "max_messages": "LLM_MESH_MAX_MESSAGES",
    "max_content_chars": "LLM_MESH_MAX_CONTENT_CHARS",
    "max_n": "LLM_MESH_MAX_N",
    "max_stop": "LLM_MESH_MAX_STOP",
    "max_stop_chars": "LLM_MESH_MAX_STOP_CHARS",
}


def env_limits(env: Mapping[str, str]) -> RequestLimits:
    """The request limits: each ``LLM_MESH_MAX_*`` variable set, else its default."""
    default = RequestLimits()
    return RequestLimits(
        **{name: env_int(env, key, getattr(default, name)) for name, key in _LIMIT_ENV.items()}
    )


def env_witnesses(env: Mapping[str, str]) -> tuple[str, ...]:
    """``LLM_MESH_LEDGER_WITNESSES``: witness key texts, ``,``-separated, each checked."""
    texts = tuple(t.strip() for t in (env.get("LLM_MESH_LEDGER_WITNESSES") or "").split(","))
    out = tuple(t for t in texts if t)
    if not out:
        return out
    # imported here: config is read by the node's hardware detection under a bare system
    # Python (setup-node-operator.sh --dry-run), which has no `cryptography`
    from LLM_Mesh.core.witness import BadCosignature, parse_vkey

    for t in out:
        try:
            parse_vkey(t)
        except BadCosignature as exc:
            raise ValueError(f"LLM_MESH_LEDGER_WITNESSES: {exc}") from None
    return out


def env_witness_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """``LLM_MESH_LEDGER_WITNESS_URLS``: witnesses' submission prefixes, ``,``-separated,
    each a strict http(s) URL (``core/netguard.parse_node_url``: no user info, query or
    fragment; not ending in ``/add-checkpoint``, which the pusher adds); only with ``LLM_MESH_LEDGER_WITNESSES`` (else every cosignature would be
    thrown away)."""
    urls = split_urls(env.get("LLM_MESH_LEDGER_WITNESS_URLS") or "")
    if not urls:
        return urls
    from LLM_Mesh.core.netguard import NodeUrlError, parse_node_url

    for u in urls:
        try:
            parse_node_url(u)
        except NodeUrlError as exc:
            raise ValueError(f"LLM_MESH_LEDGER_WITNESS_URLS: {u[:100]!r}: {exc}") from None
        if u.endswith("/add-checkpoint"):  # the URL `ledger witness --listen` prints
            prefix = u.removesuffix("/add-checkpoint")[:100]
            raise ValueError(
                f"LLM_MESH_LEDGER_WITNESS_URLS: {u[:100]!r} is the witness's POST URL: give "
                f"its submission prefix, without /add-checkpoint ('{prefix}'), which the "
                "registry adds itself"
            )
    if not env_witnesses(env):
        raise ValueError(
            "LLM_MESH_LEDGER_WITNESS_URLS needs LLM_MESH_LEDGER_WITNESSES: the key texts of "
            "the witnesses whose cosignatures the registry keeps"
        )
    return urls
