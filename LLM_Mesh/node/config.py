"""A node's configuration: :class:`NodeConfig`, read from and written to TOML.

``$LLM_MESH_HOME/node.toml`` holds the same keys as the dataclass fields::

    engine = "llama-cpp"          # "llama-cpp" | "openai" | "sim"
    models = ["gemma-3-270m"]     # catalog ids, paths to .gguf, or "name=path"
    port = 8801
    max_concurrency = 1
    max_queue = 8
    memory_budget_bytes = 6_000_000_000   # llama-cpp; default: 80 % of available RAM
    availability_hours = "22:00-07:00"    # local time; outside it the node pauses
    max_body_bytes = 16_777_216           # request bodies over this (+ 1 KiB: core/limits.py) get 413

    operator_token = "lmo_..."            # the credential to register (or LLM_MESH_OPERATOR_TOKEN)
    key_file = "/path/to/node.key"        # default: $LLM_MESH_HOME/node.key
    keeps_no_prompts = true               # default: true, false for engine = "openai"
    registry_public_key = "..."           # optional: the gateway's key, pinned from the start
    allow_http_first_use = false          # true: learn that key over plain http (core/first_use.py)
    registry_ca = "/path/to/registry-ca.pem"  # an https registry's private CA, trusted besides
                                          # the system's (relative: under $LLM_MESH_HOME); the
                                          # node, `earnings` and `ledger statement --operator`
                                          # use it when neither --registry-ca nor
                                          # LLM_MESH_REGISTRY_CA names one
    tls_cert = "/path/to/node-tls.crt"    # serve https (llm-mesh node tls init makes both)
    tls_key = "/path/to/node-tls.key"
    trusted_peers = ["203.0.113.0/28"]    # not counted per peer (core/peer_exempt.py); default none
    stream_interval_s = 0.04              # llama-cpp: after the first token, at most one write
                                          # of tokens per 40 ms (default; LLM_MESH_STREAM_INTERVAL_S)
    served_log = "served.jsonl"           # what the node served, never its text (default; "" off)
    served_log_max_bytes = 33_554_432     # rotated past 32 MiB, served_log_keep = 3 older files

The node id is derived from the node's key (``node/keys.py``): a ``node_id`` written
here (older versions made one up) is ignored when it is not the key's, with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT, Settings, split_urls
from LLM_Mesh.config import ENGINES as ENGINES  # its home before (cli/options.py needs it light)
from LLM_Mesh.core.confusable import lookalike_problem
from LLM_Mesh.core.peer_exempt import parse_trusted_peers
from LLM_Mesh.core.schemas import MAX_MODELS_PER_NODE
from LLM_Mesh.errors import MeshError
from LLM_Mesh.node.model_files import model_id_of
from LLM_Mesh.secret_files import make_private_dir, too_open
from LLM_Mesh.text_files import read_text

log = logging.getLogger("LLM_Mesh.node")

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def local_node_url(host: str, port: int, tls: bool) -> str:
    """Where this machine reaches a node listening on ``host``:``port`` (``tls``: with
    ``tls_cert``): a node listening on every address is reached on loopback, which its
    admin routes answer; an IPv6 address in brackets."""
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: node.toml keys that are credentials: the file should be its owner's only (0600)
SECRET_KEYS = ("operator_token", "upstream_api_key")
CONFIG_FILE = "node.toml"
# room above the gateway's /v1 body limit for what it adds (stream_options, mesh_continue)
DEFAULT_NODE_BODY_BYTES = 16 * 1024 * 1024
# after the first token, the shortest time between two writes of tokens (0: every token
# alone): the smallest value whose decode ratio through the mesh met issue 7's 0.97 in every
# run of benchmarks/bench_throughput.py --stream-intervals (docs/benchmarks.md, 2026-12-04:
# 0.975-0.993 at 0.04 against 0.938-0.961 at 0, the 2-core box); 25 updates a second
DEFAULT_STREAM_INTERVAL_S = 0.04
MAX_STREAM_INTERVAL_S = 1.0  # longer and a stream reads as stalled
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _check_model_id(ref: str) -> None:
    """A ``models`` entry whose id would pass for a catalog id (``core/confusable.py``) is
    refused here, at the operator's config, rather than by the registry's 400 later."""
    try:
        model_id = model_id_of(ref)
    except MeshError:  # an empty entry: resolving it says what is wrong
        return
    problem = lookalike_problem(model_id)
    if problem is not None:
        raise ValueError(f"models entry {ref!r}: {problem}")


@dataclass
class NodeConfig:
    node_id: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_NODE_PORT
    public_url: str | None = None
    # None: the settings' registry; "URL,URL,..." (or a TOML list): replicas, tried in turn
    registry_url: str | None = None
    register: bool = True  # False: serve standalone, no registry
    region: str | None = None
    engine: str = "llama-cpp"
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    upstream_url: str | None = None
    upstream_api_key: str | None = None
    sim_ttft_s: float = 0.05
    sim_tokens_per_s: float = 50.0
    sim_failure_rate: float = 0.0
    max_concurrency: int = 1
    max_queue: int = 8
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0
    memory_budget_bytes: int | None = None
    availability_hours: str | None = None  # "HH:MM-HH:MM", local time; None: always
    # request bodies over this (plus core/limits.GATEWAY_MARGIN_BYTES, the room for the members
    # the gateway adds to a client's body): 413
    max_body_bytes: int = DEFAULT_NODE_BODY_BYTES
    operator_token: str | None = None  # credential to register; else LLM_MESH_OPERATOR_TOKEN
    key_file: str | None = None  # the node's Ed25519 key; None: $LLM_MESH_HOME/node.key
    # declared in the signed registration: this node stores and logs no prompt or output.
    # None: true for llama-cpp and sim (they keep nothing); false for openai, whose upstream
    # the operator must vouch for by setting it true
    keeps_no_prompts: bool | None = None
    # the gateway's public key, when the operator got it from the registry's admin out of
    # band: pinned from the start, and a registration answer with another key is ignored.
    # None: pin the key the first accepted registration answer carries
    registry_public_key: str | None = None
    # without a pinned key, a plain-http registry on another machine refuses to start
    # unless this is true (or LLM_MESH_ALLOW_HTTP_FIRST_USE): core/first_use.py
    allow_http_first_use: bool = False
    # the CA file (PEM) of an https registry with a private CA, trusted besides the system's;
    # --registry-ca and LLM_MESH_REGISTRY_CA win (found 2026-12-06, cli36: none here, and
    # `llm-mesh earnings` in the node's home needed --registry-ca every time): ca_file_of
    registry_ca: str | None = None
    tls_cert: str | None = None  # PEM certificate: the node serves https (node/tls.py)
    tls_key: str | None = None  # its private key (PEM)
    # "ADDR,CIDR,..." (or a TOML list): peers not counted against the per-peer connection
    # cap (a load-balanced registry's egress addresses); None: none but loopback and the
    # registries' resolved addresses (core/peer_exempt.py)
    trusted_peers: str | None = None
    # llama-cpp: after the first token (sent at once), the node writes at most one batch of
    # tokens per this many seconds (the end at once): fewer wake-ups of the node, the gateway
    # and the client per token, on the cores the model computes on. None: the settings'
    # (LLM_MESH_STREAM_INTERVAL_S), else DEFAULT_STREAM_INTERVAL_S; 0: every token alone
    stream_interval_s: float | None = None
    # the served log (node/served_log.py): a line per request the node ended, never its text;
    # a relative path is under $LLM_MESH_HOME; "" keeps none. Rotated past max_bytes, with
    # served_log_keep older files (served.jsonl.1, ...)
    served_log: str = "served.jsonl"
    served_log_max_bytes: int = 32 << 20
    served_log_keep: int = 3

    def __post_init__(self) -> None:
        self.validate()

    @property
    def declares_no_prompts_kept(self) -> bool:
        """What the registration declares: ``keeps_no_prompts`` (see the field)."""
        if self.keeps_no_prompts is not None:
            return self.keeps_no_prompts
        return self.engine != "openai"

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.max_queue < 0:
            raise ValueError("max_queue cannot be negative")
        if self.n_ctx < 16:
            raise ValueError("n_ctx must be at least 16")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError("n_threads must be at least 1 (leave it out for the CPU count)")
        if self.sim_ttft_s < 0 or self.sim_tokens_per_s <= 0:
            raise ValueError("sim_ttft_s must be >= 0 and sim_tokens_per_s > 0")
        if not 0.0 <= self.sim_failure_rate <= 1.0:
            raise ValueError("sim_failure_rate must be between 0 and 1")
        if self.engine == "openai" and not self.upstream_url:
            raise ValueError("the openai engine needs upstream_url")
        if self.engine != "openai" and not self.models:
            raise ValueError(f"the {self.engine} engine needs at least one model")
        if len(self.models) > MAX_MODELS_PER_NODE:  # the registry would refuse the registration
            raise ValueError(
                f"models lists {len(self.models)} entries; a node serves at most "
                f"{MAX_MODELS_PER_NODE}"
            )
        for ref in self.models:
            _check_model_id(ref)
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        if self.availability_hours is not None:
            parse_hours(self.availability_hours)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (llm-mesh node tls init makes both)")
        if self.tls_cert and self.public_url and not self.public_url.startswith("https://"):
            raise ValueError("with tls_cert the node serves https: public_url must be https://")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.memory_budget_bytes is not None and self.memory_budget_bytes <= 0:
            raise ValueError("memory_budget_bytes must be positive (leave it out for 80 % of RAM)")
        parse_trusted_peers(self.trusted_peers)
        if self.served_log_max_bytes < 4096 or not 0 <= self.served_log_keep <= 100:
            raise ValueError("served_log_max_bytes must be >= 4096 and served_log_keep 0 to 100")
        if self.stream_interval_s is not None and not (
            0.0 <= self.stream_interval_s <= MAX_STREAM_INTERVAL_S
        ):
            raise ValueError(
                f"stream_interval_s must be between 0 and {MAX_STREAM_INTERVAL_S:g} seconds"
            )

    def effective_stream_interval_s(self, settings: Settings) -> float:
        """``stream_interval_s``, else the settings' (env), else the default."""
        if self.stream_interval_s is not None:
            return self.stream_interval_s
        if settings.stream_interval_s is not None:
            return settings.stream_interval_s
        return DEFAULT_STREAM_INTERVAL_S

    @property
    def effective_public_url(self) -> str:
        """What the registry is told to call: ``public_url`` or ``http(s)://host:port``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return local_node_url(self.host, self.port, bool(self.tls_cert))

    def effective_registry_url(self, settings: Settings) -> str:
        """The first registry URL (see :meth:`effective_registry_urls`)."""
        return self.effective_registry_urls(settings)[0]

    def effective_registry_urls(self, settings: Settings) -> tuple[str, ...]:
        """Every registry URL the node may use, in the order it tries them."""
        if self.registry_url:
            urls = split_urls(self.registry_url)
            if urls:
                return urls
        return settings.registry_urls

    def ca_file_of(self, home: Path) -> str | None:
        """``registry_ca`` as a path (``~`` expanded; relative: under ``home``), or ``None``."""
        if not self.registry_ca:
            return None
        return str(home / Path(self.registry_ca).expanduser())

    def to_dict(self) -> dict[str, Any]:
        """The TOML keys (``None`` values left out: TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def parse_hours(spec: str) -> tuple[int, int]:
    """``"22:00-07:30"`` → minutes after midnight ``(1320, 450)``; may wrap midnight."""
    m = _HOURS.match(spec)
    if not m:
        raise ValueError(f"availability_hours must look like 'HH:MM-HH:MM', got {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"availability_hours has an impossible time: {spec!r}")
    return h1 * 60 + m1, h2 * 60 + m2


def within_hours(spec: str | None, minute_of_day: int) -> bool:
    """Is ``minute_of_day`` (0..1439) inside the window? ``None`` means always."""
    if spec is None:
        return True
    start, end = parse_hours(spec)
    if start == end:
        return True
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


def default_config_path(settings: Settings) -> Path:
    return settings.home / CONFIG_FILE


def load_node_config(path: Path | str) -> NodeConfig:
    """Read a TOML file with :class:`NodeConfig`'s keys; unknown keys are an error."""
    p = Path(path)
    try:
        data = tomllib.loads(read_text(p, "node config"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p} is not valid TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(NodeConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{p}: unknown keys {', '.join(unknown)}")
    problem = _type_problem(data)
    if problem is not None:
        raise ValueError(f"{p}: {problem}")
    if "models" in data and isinstance(data["models"], str):
        data["models"] = [data["models"]]
    if isinstance(data.get("registry_url"), list):  # registry_url = ["URL", "URL"]
        data["registry_url"] = ",".join(str(u) for u in data["registry_url"])
    if isinstance(data.get("trusted_peers"), list):  # trusted_peers = ["ADDR", "CIDR"]
        data["trusted_peers"] = ",".join(str(u) for u in data["trusted_peers"])
    try:
        cfg = NodeConfig(**data)
    except (TypeError, ValueError) as exc:  # the file named: which one of several is wrong
        raise ValueError(f"{p}: {exc}") from None
    held = [k for k in SECRET_KEYS if data.get(k)]
    if held and too_open(p):  # as node.key's: said, not changed (found 2026-12-03)
        log.warning(
            "%s holds %s and can be read by other users of this machine: chmod 600 %s",
            p,
            " and ".join(held),
            p,
        )
    return cfg


_TOML_TYPES: dict[type, str] = {
    bool: "true or false", int: "a whole number", float: "a number", str: "a string",
    list: "a list", dict: "a table",
}  # fmt: skip
# the keys that take a string or a list of strings (one model, or replicas / peers)
_STRING_OR_LIST = ("models", "registry_url", "trusted_peers")


def _type_problem(data: dict[str, Any]) -> str | None:
    """The first key whose value is not of its field's type, said with the key, the type
    it takes and the value given (found 2026-12-04: ``port = "abc"`` ended ``node start``
    with "'<' not supported between instances of 'int' and 'str'", ``models = 5`` with
    "object of type 'int' has no len()", and ``max_queue = 1.5`` started a node)."""
    hints = typing.get_type_hints(NodeConfig)
    for key, value in data.items():
        hint = hints.get(key)
        if hint is None:
            continue
        if key in _STRING_OR_LIST:
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(x, str) for x in value)
            )
            if not ok:
                return f"{key} must be a string or a list of strings, got {_given(value)}"
            continue
        wanted = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        want = wanted[0]
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif want is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, want)
        if not ok:
            return f"{key} must be {_TOML_TYPES.get(want, want.__name__)}, got {_given(value)}"
    return None


def _given(value: Any) -> str:
    """A TOML value as the error shows it: the value and its type in words."""
    kind = next((w for t, w in _TOML_TYPES.items() if isinstance(value, t)), type(value).__name__)
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"{shown} ({kind})"


def save_node_config(cfg: NodeConfig, path: Path | str) -> None:
    """Write ``cfg`` as TOML atomically (temp file in the same folder, then rename)."""
    _write_atomic(Path(path), tomli_w.dumps(cfg.to_dict()))


def _write_atomic(path: Path, text: str) -> None:
    make_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
