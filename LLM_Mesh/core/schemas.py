"""Wire messages between nodes, registry, gateway and clients.

All are pydantic models that *tolerate unknown fields* (``extra="allow"`` on
the wire models a peer may extend), so nodes and registries can be upgraded one
at a time. Pydantic is plain data validation, not a web framework: it belongs
in ``core``.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from LLM_Mesh.core.confusable import lookalike_problem
from LLM_Mesh.core.tls import parse_fingerprint


class NodeState(str, Enum):
    JOINING = "joining"
    ONLINE = "online"
    PAUSED = "paused"
    DRAINING = "draining"
    OFFLINE = "offline"

    @classmethod
    def stored(cls, value: str) -> NodeState:
        """A state read from the store: one this version does not know (written by a newer
        replica on the same database, or by hand) is ``OFFLINE`` (never routed), not a
        ``ValueError`` (found 2026-12-07, review42: the admin's ``GET /mesh/nodes?all=true``
        failed with 500 for one such forgotten row)."""
        try:
            return cls(value)
        except ValueError:
            return cls.OFFLINE


_KX_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # an X25519 public key, base64url (core/gateway_session.py)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


# the store's column widths (registry/tables.py): a longer value made PostgreSQL refuse the
# registration with a 500
_NAME_CHARS = 128
_INT32_MAX = 2**31 - 1
# models one registration may list: each id is checked against the catalog
# (core/confusable.py), and a registration is parsed before its operator token is looked up,
# so an unbounded list let anyone with a self-made key cost the registry's loop seconds
MAX_MODELS_PER_NODE = 256
# JSON arrays and objects a registration may hold (the body, its models and theirs, its
# hardware and GPUs): counted on the bytes before the parser runs (core/limits.json_shape),
# since 1 MiB of ``{"id":"a"}`` objects cost the parser ~100-180 ms before the count above
MAX_REGISTRATION_CONTAINERS = 4 * MAX_MODELS_PER_NODE + 64
# a model id's characters (``HostedModel.id``), also in a heartbeat's ``loaded_models``
MAX_MODEL_ID_CHARS = 256
# a heartbeat's bytes: its loaded models, each a registration's model at most (4 UTF-8
# bytes a character: a node writes them unescaped, ``node/agent_wire.py``), and 8 KiB for
# the rest; refused before the signature and the parser (found 2026-12-05: 1 MiB of
# ``loaded_models`` was parsed and put in the table, ~8 ms of the registry's loop each time)
MAX_HEARTBEAT_BYTES = MAX_MODELS_PER_NODE * (4 * MAX_MODEL_ID_CHARS + 3) + 8192


def _printable(v: str | None) -> str | None:
    """A node-chosen name shown in listings, the CLI, the dashboard and logs: no control
    or format characters (terminal escapes, newlines forging log lines, bidi overrides)."""
    if v is not None and not v.isprintable():
        raise ValueError("must be printable: no control or format characters")
    return v


# a registration's ``hardware`` as JSON: a real machine's is well under 1 KiB (a few GPUs'
# names and memory); found 2026-12-05 (attack32b): any size was taken (1 MiB of GPUs or of
# fields of its own), kept in every replica's table and the store, rewritten at each
# registration, and sent whole in the admin's node listing
MAX_HARDWARE_BYTES = 16 * 1024
# a hosted model's fields beyond HostedModel's own (``HostedModel._extras_bounded``)
MAX_MODEL_EXTRA_BYTES = 512
MAX_GPUS = 64


class Hardware(_Wire):
    cpu_count: int = 0
    memory_bytes: int = 0
    disk_free_bytes: int = 0
    gpus: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_GPUS)

    @model_validator(mode="after")
    def _bounded(self) -> Hardware:
        size = len(json.dumps(self.model_dump(mode="json"), ensure_ascii=False).encode())
        if size > MAX_HARDWARE_BYTES:
            raise ValueError(f"hardware is at most {MAX_HARDWARE_BYTES} bytes of JSON ({size})")
        return self


class HostedModel(_Wire):
    """A model a node serves (or could load)."""

    id: str = Field(min_length=1, max_length=MAX_MODEL_ID_CHARS)  # as a request's model
    # "llama-cpp" | "openai" | "sim" (a node of another make may name its own); bounded as
    # the other names a node chooses: found 2026-12-05 (attack32b), a 1 MiB engine name was
    # listed whole in the public GET /mesh/nodes to everyone who asked, at every replica
    engine: str = Field(default="llama-cpp", min_length=1, max_length=_NAME_CHARS)
    simulated: bool = False
    loaded: bool = True
    custom: bool = False
    # the model file's SHA-256 (64 hex digits, kept lower case: verifiers are matched on it,
    # core/trust.py); found 2026-12-05 (attack32b): any text was taken, of any length, with
    # control characters, and listed in GET /mesh/nodes, /mesh/models and /v1/models
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    context_length: int | None = None

    _id_printable = field_validator("id", "engine")(_printable)

    @model_validator(mode="after")
    def _extras_bounded(self) -> HostedModel:
        """Fields of a node's own (``continuation``, ``load_time_s``: tens of bytes) are
        listed as sent in GET /mesh/nodes: found 2026-12-05 (attack32b), 500 KB of them in
        one model of a registration were listed whole to everyone who asked."""
        extra = self.model_extra
        if extra:
            size = len(json.dumps(extra, ensure_ascii=False, default=str).encode())
            if size > MAX_MODEL_EXTRA_BYTES:
                raise ValueError(
                    f"a model's fields beyond the known ones are at most "
                    f"{MAX_MODEL_EXTRA_BYTES} bytes of JSON ({size})"
                )
        return self

    @field_validator("sha256")
    @classmethod
    def _sha256_lower(cls, v: str | None) -> str | None:
        return None if v is None else v.lower()


class NodeRegistration(_Wire):
    """POST /mesh/nodes: a node announces itself (also used to re-register)."""

    node_id: str = Field(min_length=1, max_length=128)  # identity.MAX_NODE_ID_CHARS
    url: str = Field(min_length=1, max_length=2048, json_schema_extra={"pattern": "^https?://"})
    models: list[HostedModel] = Field(min_length=1, max_length=MAX_MODELS_PER_NODE)
    region: str | None = Field(default=None, max_length=_NAME_CHARS)
    hardware: Hardware = Field(default_factory=Hardware)
    max_concurrency: int = Field(default=1, ge=1, le=_INT32_MAX)
    max_queue: int = Field(default=8, ge=0, le=_INT32_MAX)
    version: str = Field(default="0", max_length=_NAME_CHARS)
    state: NodeState = NodeState.ONLINE
    # the operator's signed declaration that the node stores and logs no prompt or output
    # (None: not declared, e.g. an older node); shown in listings and `llm-mesh status`
    keeps_no_prompts: bool | None = None
    # SHA-256 of the node's TLS certificate (DER), pinned by the gateway (core/tls.py)
    tls_fingerprint: str | None = Field(default=None, max_length=128)
    # the node's X25519 key for this process: the gateway's per-node session key is
    # agreed with it (core/gateway_session.py); None: the gateway signs each request
    gateway_kx_key: str | None = Field(default=None, pattern=_KX_PATTERN)
    # SHA-256 (hex) of the operator token the node sends in X-Mesh-Operator-Token: the
    # node's signature covers the body, not that header, so without it whoever relays or
    # sees the registration (plain http on the path, a proxy, a registry of another mesh
    # within the 120 s window) could send it with their own token and have the node's
    # key claimed for their operator, its answers and uptime paid to them (found
    # 2026-12-05, attack32b). None: an older node (the header alone, as before)
    operator_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # True: the node sends each answer's beat_token back (X-Mesh-Beat-Token), so past the
    # counts of forged heartbeats one without it is a stranger's (registry/beat_tokens.py,
    # beattoken38); signed, so no one else can say it. None: an older node
    beat_tokens: bool | None = None

    _names_printable = field_validator("node_id", "region", "version")(_printable)

    @field_validator("models", mode="before")
    @classmethod
    def _models_bounded(cls, v: Any) -> Any:
        """Counted before any entry is validated or checked (not after all of them)."""
        if isinstance(v, list) and len(v) > MAX_MODELS_PER_NODE:
            raise ValueError(
                f"a node lists at most {MAX_MODELS_PER_NODE} models (this one {len(v)})"
            )
        return v

    @field_validator("models")
    @classmethod
    def _no_lookalike_ids(cls, v: list[HostedModel]) -> list[HostedModel]:
        """A custom model's id must not pass for a catalog id (``core/confusable.py``)."""
        for i, model in enumerate(v):
            problem = lookalike_problem(model.id)
            if problem is not None:
                raise ValueError(f"models[{i}].id: {problem}")
        return v

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        return None if v is None else parse_fingerprint(v)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        if not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError("url must start with http:// or https://")
        return v.rstrip("/")


class Heartbeat(_Wire):
    """POST /mesh/nodes/{id}/heartbeat: the node's load, every heartbeat interval."""

    # bounded as the registration's capacity: 10^400 raised OverflowError in the router's
    # cost view (floats), so GET /mesh/nodes answered 500 for everyone (found 2026-12-05)
    in_flight: int = Field(default=0, ge=0, le=_INT32_MAX)
    queued: int = Field(default=0, ge=0, le=_INT32_MAX)
    # at most what a registration may list (MAX_MODELS_PER_NODE ids of MAX_MODEL_ID_CHARS)
    loaded_models: list[Annotated[str, Field(max_length=MAX_MODEL_ID_CHARS)]] | None = None
    state: NodeState = NodeState.ONLINE
    requests_served: int = 0
    tokens_generated: int = 0
    # as in the registration: a registry that restarted (or a replica) agrees the same
    # session key from it without a new registration (core/gateway_session.py)
    gateway_kx_key: str | None = Field(default=None, pattern=_KX_PATTERN)
    # seconds since the node's last keyed request (``core/priority.py``: it keeps places
    # for keyed ones while this is under ``KEYED_SEEN_S``); None: none in that window, or an
    # older node. Every replica's router counts the kept places from it (the node's own
    # state), not only the one that sent the keyed request. Bounded as the counts above
    keyed_age_s: float | None = Field(default=None, ge=0, le=_INT32_MAX, allow_inf_nan=False)
    # the registration's ``keeps_no_prompts`` again (None: an older node): a registry that
    # holds another (a row an older replica wrote tells none) answers 404 ``unknown_node``,
    # so the node registers again and is routed as it declares (registry/api.py)
    keeps_no_prompts: bool | None = None

    @field_validator("loaded_models", mode="before")
    @classmethod
    def _loaded_bounded(cls, v: Any) -> Any:
        """Counted before any entry is validated, as a registration's ``models``."""
        if isinstance(v, list) and len(v) > MAX_MODELS_PER_NODE:
            raise ValueError(
                f"a heartbeat lists at most {MAX_MODELS_PER_NODE} loaded models, as a "
                f"registration does (this one {len(v)})"
            )
        return v


class KeyRotation(_Wire):
    """The previous registry key vouching for the current one (``core/key_rotation.py``):
    its Ed25519 signature (base64url) over the rotation domain and ``public_key``."""

    public_key: str
    previous_public_key: str
    signature: str


class RegistrationAccepted(_Wire):
    """The registry's answer to a signed registration: what the node's later messages need.

    Its later messages must carry sequence numbers greater than ``seq`` and timestamps
    within ``max_clock_skew_s`` of ``registry_time`` (unix seconds, the registry's clock).
    """

    node_id: str
    heartbeat_interval_s: float
    # after this long without a heartbeat the registry takes the node out of routing (what
    # a node that could not say goodbye waits on); None from a registry that does not say
    heartbeat_expiry_s: float | None = None
    registry_version: str = "0"
    operator: str | None = None
    seq: int = 0
    max_clock_skew_s: float = 120.0
    registry_time: float | None = None
    # the gateway's key: the node pins it and requires its signature on every /v1
    # inference request (core/gateway_auth.py); None from a registry without one
    registry_id: str | None = None
    registry_public_key: str | None = None
    # the key agreement for the node's gateway_kx_key: the registry's X25519 key and its
    # Ed25519 signature over both keys and ids (core/gateway_session.py); None: no session
    gateway_kx_key: str | None = None
    gateway_kx_signature: str | None = None
    # a rotated registry.key: the previous key's statement naming this one, which lets a
    # node that pinned the previous key move its pin (core/key_rotation.py); else None
    key_rotation: KeyRotation | None = None
    # every rotation the registry keeps, oldest first, the last being ``key_rotation``:
    # each previous key's statement naming the next, which lets a node several rotations
    # behind follow (core/key_chain.py, at most MAX_CHAIN_LINKS); else None
    key_rotations: list[KeyRotation] | None = None
    # True: the gateway sends the body's SHA-256 (X-Mesh-Body-SHA256) with every forwarded
    # request, and the node refuses one without it, unread (core/gateway_auth.py); None
    # from an older registry (the node checks as before)
    gateway_body_sha256: bool | None = None
    # a secret the node sends back (X-Mesh-Beat-Token) with its next heartbeat or goodbye
    # to this process: past the counts of forged ones it is still verified (beattoken38,
    # registry/beat_tokens.py); None from an older registry
    beat_token: str | None = None


class NodeView(_Wire):
    """What the registry says about one node (GET /mesh/nodes).

    ``url`` and ``hardware`` are the operator's private details: the admin's listing
    has them, a public one leaves them out (``NODE_PRIVATE_FIELDS``)."""

    node_id: str
    url: str | None = None
    region: str | None = None
    state: NodeState
    healthy: bool
    models: list[HostedModel]
    simulated: bool = False  # every model it hosts runs on a simulated engine
    in_flight: int = 0
    queued: int = 0
    max_concurrency: int = 1
    max_queue: int = 8
    last_heartbeat_age_s: float | None = None
    # not heard within the registry's own heartbeat expiry (``heartbeat_expiry_s``; never
    # heard here counts too): down, whatever its state says. None: an older registry, which
    # did not say (``llm-mesh status`` then judges by the default expiry, cli/render.py)
    silent: bool | None = None
    health_score: float = 1.0
    latency_ms_ewma: float | None = None
    ttft_ms_ewma: float | None = None
    requests: int = 0
    failures: int = 0
    hardware: Hardware | None = None
    keeps_no_prompts: bool | None = None
    revoked: bool = False  # its key was revoked by the registry's admin (state OFFLINE)
    # the models whose pools the router has it ejected from now (with ``ejected``: it may be
    # out of some and kept, rested, in those that cannot spare it, core/route_pools.py);
    # [] when not ejected; None: the router has no view of it (nor ``ejected``)
    ejected_models: list[str] | None = None


class ForgottenNode(_Wire):
    """A stored node the registry no longer holds in memory (quiet past ``node_forget_s``):
    a row of the admin's ``GET /mesh/nodes?all=true`` beside the :class:`NodeView` rows,
    read from the store (``registry/node_forget.stored_rows``). ``silent`` as a
    ``NodeView``'s: always true, not heard here since it was forgotten (found 2026-12-07,
    cli42: these rows had no ``silent`` while the live rows carried it, and the OpenAPI
    document said every row a ``NodeView``, which ``state: "revoked"`` and ``models`` as
    names are not)."""

    node_id: str
    state: NodeState | Literal["revoked"]  # "revoked": its key was revoked by the admin
    revoked: bool
    forgotten: Literal[True]
    healthy: Literal[False]
    silent: Literal[True]
    url: str | None = None
    region: str | None = None
    models: list[str]  # the ids of the models it last registered with
    registered_at: str | None = None  # ISO 8601
    last_heartbeat_at: str | None = None


NODE_PRIVATE_FIELDS = frozenset({"url", "hardware"})


class MeshMeta(_Wire):
    """The ``mesh`` object on every answer: who served it, how fast, what it cost."""

    node_id: str
    model: str
    engine: str | None = None
    simulated: bool = False
    request_id: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0  # micro-NetworkTokens (core/pricing.py), what the payer is charged
    currency: str = "micro-NetworkToken"
    attempts: int = 1
    fallback_from: str | None = None
    # the node's signed receipt (core/receipt.py); at the gateway: the countersigned one
    receipt: dict[str, Any] | None = None


# --- OpenAI request bodies (validated at the gateway and at the node) -------------


class ChatMessage(_Wire):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = [p.get("text", "") for p in self.content if isinstance(p, dict)]
        return "".join(str(p) for p in parts)


MAX_TOKENS_LIMIT = 32_768


class _Sampling(_Wire):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    # OpenAI's range, 0 included: the smallest nucleus, the likeliest token alone (greedy);
    # refused with 400 until 2026-12-05
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    # OpenAI refuses it on a request that does not stream (so does the mesh: it asked for
    # nothing there, found 2026-12-05)
    stream_options: dict[str, Any] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # OpenAI's: an int64
    n: int | None = Field(default=None, ge=1)  # at most Settings.limits.max_n (core/limits.py)
    # OpenAI's range; applied by the engines (node/engines/llama_cpp.py: llama.cpp's own
    # additive penalties; openai: forwarded; sim: a simulated effect)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    user: str | None = None
    # mesh extensions (ignored by plain OpenAI servers)
    task_type: str | None = None

    @field_validator("stream_options")
    @classmethod
    def _streams_only(cls, v: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if v is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return v

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


MAX_TOP_LOGPROBS = 20  # OpenAI's limit for top_logprobs


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, v: int | None, info: ValidationInfo) -> int | None:
        """As OpenAI: candidates without ``logprobs: true`` are refused (they were not
        returned, without a word: found 2026-12-05); 0 asks for none."""
        if v and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return v

    def top_logprobs_wanted(self) -> int | None:
        """How many top candidates per token to return; None: no log-probabilities."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def effective_max_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    def top_logprobs_wanted(self) -> int | None:
        """How many top candidates per token to return; None: no log-probabilities."""
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt is supported per request")
        return v

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def effective_max_tokens(self, default: int) -> int:
        return self.max_tokens or default
