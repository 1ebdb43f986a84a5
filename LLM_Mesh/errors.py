"""The mesh's one exception tree.

Every error the mesh raises on purpose is a :class:`MeshError`. Each class
carries the HTTP status and the OpenAI error ``type``/``code`` it maps to, so
one handler (``LLM_Mesh.registry.errors`` / ``LLM_Mesh.node.app``) turns any of
them into OpenAI's error shape, and clients turn that shape back into the same
class (:func:`error_from_payload`).

    MeshError                          500 api_error
    ├── InvalidRequest                 400 invalid_request_error
    │   ├── ContextLengthExceeded      400 invalid_request_error / context_length_exceeded
    │   └── LimitExceeded              400 invalid_request_error / limit_exceeded (a request limit)
    │       └── PayloadTooLarge        413 invalid_request_error / request_too_large
    ├── NodeAddressRefused             403 permission_error / node_address_refused (no SSRF)
    ├── ModelNotFound                  404 invalid_request_error / model_not_found
    ├── ModelUnavailable               503 service_unavailable / model_unavailable
    ├── Overloaded                     429 rate_limit_error / overloaded
    │   └── RateLimited                429 rate_limit_error / rate_limit_exceeded (x-ratelimit-*)
    ├── UnknownNode                    404 invalid_request_error / unknown_node
    ├── Unauthorized                   401 authentication_error / unauthorized
    │   ├── BadSignature               401 authentication_error / invalid_signature
    │   ├── StaleMessage               401 authentication_error / stale_message
    │   ├── ReplayedMessage            401 authentication_error / replayed_message
    │   ├── InvalidCredential          401 authentication_error / invalid_credential
    │   │   └── OperatorTokenRefused   401 ... / invalid_credential (signed: no known token)
    │   └── InvalidApiKey              401 authentication_error / invalid_api_key (wrong, revoked)
    ├── Forbidden                      403 permission_error / forbidden
    │   ├── NodeIdMismatch             403 permission_error / node_id_mismatch
    │   └── Revoked                    403 permission_error / revoked
    ├── PaymentRequired                402 insufficient_balance / insufficient_balance (settlement)
    │   └── PoolExhausted              402 insufficient_balance / community_pool_exhausted
    ├── SettlementUnavailable          503 service_unavailable / settlement_unavailable
    ├── StoreUnavailable               503 service_unavailable / store_unavailable (database busy or gone)
    ├── LedgerBehind                   --  (the registry's start only: its store's ledger is
    │                                       behind a checkpoint it published: a restored backup)
    ├── UpstreamError                  502 api_error / upstream_error   (a node failed)
    │   └── UpstreamTimeout            504 api_error / upstream_timeout
    ├── EngineError                    500 api_error / engine_error     (inside a node)
    └── RegistryUnreachable            --  (client side only: nothing answered)
"""

from __future__ import annotations

from typing import Any, ClassVar


class MeshError(Exception):
    """Base of every error the mesh raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra: dict[str, Any] = extra
        # the gateway's id of the request it refuses, once it has one (its answer's headers)
        self.request_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        err: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        err.update(self.extra)
        return {"error": err}


class InvalidRequest(MeshError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    """A request field asking for what no engine of the mesh does (``core/unsupported.py``)."""

    code = "unsupported_parameter"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class LimitExceeded(InvalidRequest):
    """A request over one of the configured limits (``LLM_Mesh.core.limits``).

    ``param`` names the request field; the extra ``limit`` names the setting
    (``max_messages``...) and ``allowed`` its value.
    """

    code = "limit_exceeded"


class PayloadTooLarge(LimitExceeded):
    """The request body is larger than ``max_body_bytes`` (the ``BodyLimit`` middleware
    refuses it unread where it can: ``limit_bytes``)."""

    status = 413
    code = "request_too_large"


class NodeAddressRefused(MeshError):
    """A node URL that resolves to an address the registry may not call (loopback, private...).

    ``reason`` is the short code from :func:`LLM_Mesh.core.netguard.address_refusal`.
    """

    status = 403
    type = "permission_error"
    code = "node_address_refused"


class ModelNotFound(MeshError):
    """The model id is in neither the catalog nor any node's custom models."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ModelUnavailable(MeshError):
    """The model exists but no healthy node hosts it right now.

    ``available`` names the models that are up; ``retry_after`` is in seconds;
    ``hopeless``: no node serves the model at all (or none within the request's
    constraints), so a client's retry cannot help soon (``core/client_retry.py``).
    """

    status = 503
    type = "service_unavailable"
    code = "model_unavailable"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        available: list[str] | None = None,
        retry_after: int = 10,
        hopeless: bool = False,
        **extra: Any,
    ) -> None:
        up = list(available or [])
        if available is not None and "models up" not in message:
            message = f"{message} (models up: {', '.join(up) if up else 'none'})"
        super().__init__(message, model=model, available=up, retry_after=retry_after, **extra)
        self.model = model
        self.available = list(available or [])
        self.retry_after = retry_after
        self.hopeless = hopeless


class Overloaded(MeshError):
    status = 429
    type = "rate_limit_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class RateLimited(Overloaded):
    """The client (its API key, or its address when anonymous) is over a limit of its own.

    ``headers`` are the ``x-ratelimit-*`` headers the answer carries besides ``Retry-After``.
    """

    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 1,
        headers: tuple[tuple[str, str], ...] = (),
        **extra: Any,
    ) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.headers = headers


class UnknownNode(MeshError):
    status = 404
    type = "invalid_request_error"
    code = "unknown_node"


class UnknownReceipt(MeshError):
    """No stored receipt of that hash that the caller may read (``GET /v1/receipts``)."""

    status = 404
    type = "invalid_request_error"
    code = "unknown_receipt"


class DuplicateRequest(MeshError):
    """A request id already ran, or runs now, and cannot be replayed (a stream, an answer too
    large to keep, or one lost with the replica that ran it): it is never executed twice."""

    status = 409
    type = "invalid_request_error"
    code = "duplicate_request"


class Unauthorized(MeshError):
    """The request does not prove who sent it (signature, credential, freshness)."""

    status = 401
    type = "authentication_error"
    code = "unauthorized"


class BadSignature(Unauthorized):
    code = "invalid_signature"


class StaleMessage(Unauthorized):
    """A signed message whose timestamp is outside the accepted window."""

    code = "stale_message"


class ReplayedMessage(Unauthorized):
    """A signed message whose sequence number is not greater than the last one seen."""

    code = "replayed_message"


class InvalidCredential(Unauthorized):
    """A missing, wrong or unknown operator token or admin key."""

    code = "invalid_credential"


class OperatorTokenRefused(InvalidCredential):
    """A registration whose operator token the registry does not know (or none): the
    registry signs it over that registration (``registry/node_auth.py``,
    ``core/revocation_proof.py``), and a node that knows its key stops only on that."""


class RegistrationRefused(MeshError):
    """A node's registration refused for good: the registry does not know its operator token
    (401 ``invalid_credential``); ``node start`` exits ``TOKEN_REFUSED_EXIT``
    (``core/revoked_notice.py``), as no retry changes that (found 2026-12-05, polish32)."""


class InvalidApiKey(Unauthorized):
    """An ``Authorization`` header whose API key is unknown, malformed or revoked."""

    code = "invalid_api_key"


class Forbidden(MeshError):
    """The sender is known but may not do this."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NodeIdMismatch(Forbidden):
    """A node acting on another node's id, or an id that is not its key's."""

    code = "node_id_mismatch"


class Revoked(Forbidden):
    """A revoked node key or operator."""

    code = "revoked"


class PaymentRequired(MeshError):
    """The payer's available balance does not cover the request's estimate (settlement).

    Extra fields: ``payer`` (``user`` or ``pool``), ``estimate``, ``balance``, ``reserved``,
    ``available`` (whole micro-NetworkTokens)."""

    status = 402
    type = "insufficient_balance"
    code = "insufficient_balance"


class PoolExhausted(PaymentRequired):
    """An anonymous request, and the community pool's available balance does not cover it."""

    code = "community_pool_exhausted"


class PoolPaysCatalogOnly(PaymentRequired):
    """An anonymous request for a custom model (in no catalog): the community pool pays
    for catalog models only, so it needs an API key (``registry/charge.py``)."""

    code = "api_key_required"


class SettlementUnavailable(MeshError):
    """The settlement database could not reserve the request's estimate: nothing was run."""

    status = 503
    type = "service_unavailable"
    code = "settlement_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.retry_after = retry_after  # its Retry-After header (found 2026-12-04, review)


class LedgerBehind(MeshError):
    """The store's ledger is shorter than (or differs from) a checkpoint this registry
    already published (``registry/ledger_mark.py``): a database restored from an older
    backup. The registry refuses to start on it rather than fork the public ledger."""


class StoreUnavailable(MeshError):
    """The registry's database did not answer in time (SQLite's write lock held past its
    busy timeout, a PostgreSQL connection lost); try again shortly."""

    status = 503
    type = "service_unavailable"
    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class UpstreamError(MeshError):
    """Every node the request tried failed it. ``retry_after``: the gateway's estimate of
    when a node would take it (its ``Retry-After``), one it did not try or one it tried
    back from its ejection or rest, if it has one
    (``core/client_retry.retry_estimate``); ``None``: no retry soon."""

    status = 502
    type = "api_error"
    code = "upstream_error"

    def __init__(self, message: str, *, retry_after: int | None = None, **extra: Any) -> None:
        if retry_after is not None:
            extra["retry_after"] = retry_after
        super().__init__(message, **extra)
        self.retry_after = retry_after

    def estimated(self, retry_after: int | None) -> None:
        """Set the gateway's estimate (its ``Retry-After``, and the body's ``retry_after``)."""
        self.retry_after = retry_after
        if retry_after is None:
            self.extra.pop("retry_after", None)
        else:
            self.extra["retry_after"] = retry_after


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class EngineError(MeshError):
    status = 500
    type = "api_error"
    code = "engine_error"


class RegistryUnreachable(MeshError):
    """Client side: nothing answered at the registry URL."""

    status = 503
    type = "api_error"
    code = "registry_unreachable"


_BY_CODE: dict[str, type[MeshError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        ContextLengthExceeded,
        LimitExceeded,
        PayloadTooLarge,
        NodeAddressRefused,
        ModelNotFound,
        ModelUnavailable,
        Overloaded,
        RateLimited,
        UnknownNode,
        UnknownReceipt,  # rebuilt as itself, not as any 404 (review39: receipt fetch)
        DuplicateRequest,
        Unauthorized,
        BadSignature,
        StaleMessage,
        ReplayedMessage,
        InvalidCredential,
        InvalidApiKey,
        Forbidden,
        NodeIdMismatch,
        Revoked,
        PaymentRequired,
        PoolExhausted,
        SettlementUnavailable,
        StoreUnavailable,
        UpstreamError,
        UpstreamTimeout,
        EngineError,
        RegistryUnreachable,
    )
    if cls.code is not None
}
ERROR_CODES: frozenset[str] = frozenset(_BY_CODE)  # every code of the tree (metrics labels)


def _retry_after(value: Any, default: int) -> int:
    """A peer's ``retry_after`` as whole seconds; ``default`` when missing or malformed."""
    if isinstance(value, bool):
        return default
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return default


def error_from_payload(status: int, payload: Any) -> MeshError:
    """Rebuild the mesh exception from an OpenAI-shaped error body."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return UpstreamError(f"HTTP {status}: {str(payload)[:300]}")
    message = str(err.get("message") or f"HTTP {status}")
    cls = _BY_CODE.get(str(err.get("code")))
    if cls is ModelUnavailable:
        available = err.get("available")
        exc = ModelUnavailable(
            message, model=err.get("model"), retry_after=_retry_after(err.get("retry_after"), 10)
        )
        # the message is kept as sent; the list is restored beside it
        exc.available = [str(a) for a in available] if isinstance(available, list) else []
        exc.extra["available"] = exc.available
        return exc
    if cls is Overloaded or cls is RateLimited:
        kind = RateLimited if cls is RateLimited else Overloaded
        return kind(message, retry_after=_retry_after(err.get("retry_after"), 1))
    if cls is None:
        cls = {
            400: InvalidRequest,
            401: Unauthorized,
            403: Forbidden,
            404: ModelNotFound,
            429: Overloaded,
            503: ModelUnavailable,
        }.get(status, UpstreamError)
        if cls in (ModelUnavailable, Overloaded):
            return cls(message)
    if cls is DuplicateRequest:
        return DuplicateRequest(message, param=err.get("param"), reason=err.get("reason"))
    allowed = err.get("allowed")
    if cls is PayloadTooLarge and type(allowed) is int and 0 < allowed <= 2**53:
        # the gateway's body limit in bytes, so the client can say it (found 2026-12-06,
        # cli38); a gateway's words: kept only as a whole number
        return PayloadTooLarge(message, param=err.get("param"), allowed=allowed)
    return cls(message, param=err.get("param"))
