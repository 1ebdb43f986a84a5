"""Stage 1, parse and validate: request bytes to a :class:`~LLM_Mesh.registry.job.Job`.

In this order, before any node is called: the body within ``max_body_bytes``
(413), UTF-8 JSON nested at most ``max_json_depth`` deep (400), a JSON object
(400), within the count limits (``messages``, content characters, ``n``,
``stop``: 400 ``limit_exceeded`` naming the limit; :mod:`LLM_Mesh.core.limits`,
``Settings.limits``), valid for the OpenAI request model (400 naming the field),
with well-formed mesh extensions (400 naming the field;
:mod:`~LLM_Mesh.registry.extensions`, stripped from what nodes receive, as are the OpenAI
fields that name or tag the client, ``user`` and the like: :mod:`LLM_Mesh.core.withheld`;
a body with none of them is forwarded as the client's bytes), for a
model the catalog or some node knows (404 listing the models), and ``max_tokens`` and
the estimated prompt within the context the mesh serves the model with now (400
``context_length_exceeded``: the largest a live node serving it declares, at most the
model's own, that one when none does: ``listing.served``, cached a second at most,
``ServedContexts``; a ``max_tokens`` over the mesh's cap is said against it too where it
is the smaller figure). The job carries the
model's price and the request's estimate (:func:`~LLM_Mesh.core.pricing.estimate`: what the admit stage reserves; for a
custom model priced at the largest context any node declares for it, so whichever node
serves it, what it may send is paid for; ``n`` choices are ``n`` answers). Whether a healthy node serves it, and whether the
prompt fits that node's context, is the send stage's to say
(:mod:`~LLM_Mesh.registry.send`).

No message here quotes the request's content (nothing of a prompt reaches a log
or an error body: docs/security.md, Privacy).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from LLM_Mesh.core import sdk_retry, strict_json
from LLM_Mesh.core.browser_origin import another_sites_page
from LLM_Mesh.core.catalog import custom_spec, get_spec
from LLM_Mesh.core.delivered import stop_slack
from LLM_Mesh.core.limits import (
    RequestLimits,
    check_body,
    check_body_size,
    check_depth,
    limit_error,
    nesting_violation,
)
from LLM_Mesh.core.pricing import estimate, estimate_prompt_tokens
from LLM_Mesh.core.priority import PRIORITY_FIELD
from LLM_Mesh.core.receipt import client_id_hash, client_ledger_id
from LLM_Mesh.core.schemas import MAX_TOKENS_LIMIT, ChatCompletionRequest, CompletionRequest
from LLM_Mesh.core.served import ledger_suffix
from LLM_Mesh.core.stream_guard import token_limit
from LLM_Mesh.core.unsupported import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    unknown_field,
    unsupported_content,
    unsupported_field,
)
from LLM_Mesh.core.validation import check_context, context_source
from LLM_Mesh.core.withheld import has_withheld
from LLM_Mesh.errors import (
    ContextLengthExceeded,
    Forbidden,
    InvalidRequest,
    ModelNotFound,
    UnsupportedParameter,
)
from LLM_Mesh.registry.continuation import MESH_CONTINUE
from LLM_Mesh.registry.errors import invalid_from_pydantic
from LLM_Mesh.registry.extensions import EXTENSION_FIELDS, forwarded_body, read_extensions
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.listing import custom_context, known_model_ids
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.request_id import new_request_id

__all__ = [
    "CHAT_PATH", "COMPLETIONS_PATH", "MAX_BODY_BYTES", "build_job", "client_ledger_id",
    "parse_json_object", "path_tag", "read_body", "refusal_ids", "settle_key_for",
]  # fmt: skip

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
_DEFAULT_LIMITS = RequestLimits()
# the fields a request may carry: the endpoint's (core/unsupported.py) and the mesh's
_CHAT_KNOWN = CHAT_FIELDS | set(EXTENSION_FIELDS)
_COMPLETION_KNOWN = COMPLETION_FIELDS | set(EXTENSION_FIELDS)
MAX_BODY_BYTES = _DEFAULT_LIMITS.max_body_bytes


async def read_body(request: Request) -> bytes:
    """The request's body: the bytes ``await request.body()`` gives, a ``http.disconnect``
    before the end its ``ClientDisconnect``. Read by a loop over the ASGI ``receive``
    (``request.receive``, Starlette's public API) instead of Starlette's async generator
    (``Request.stream``), whose setting up and closing cost more than the read of a
    one-message body (measured: docs/benchmarks.md, 2026-12-05). Nothing is kept on the
    request (Starlette's cache is private): the caller passes the bytes on, and nothing may
    read the request's body after this (a later ``body()`` would wait on ``receive`` until
    the client leaves). Its one caller, ``Pipeline.serve``, reads it first and only here."""
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json_object(raw: bytes, limits: RequestLimits = _DEFAULT_LIMITS) -> dict[str, Any]:
    """The request body as a JSON object, or ``InvalidRequest`` (413 when too large)."""
    too_big = check_body_size(len(raw), limits)
    if too_big is not None:
        raise limit_error(too_big)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    encoding = strict_json.encoding(raw)  # json.detect_encoding's answer
    if encoding not in ("utf-8", "utf-8-sig"):
        raise InvalidRequest("the request body must be UTF-8 JSON")
    too_deep = check_depth(raw, limits)
    if too_deep is not None:
        raise limit_error(too_deep)
    try:  # RFC 8259: no NaN, Infinity or number past a float's range (core/strict_json.py)
        # "utf-8" only when there is no BOM: the same text, or the same error, as "utf-8-sig"
        # gives, by the C decoder (the -sig codec is Python code: tests/registry/
        # test_parse_decode.py). The surrogate check gets that text, so the encoding is not
        # detected a second time (a str: two substring searches, as the bytes had)
        text = raw.decode(encoding)
        body = strict_json.loads(text)
        strict_json.refuse_lone_surrogates(text, body)  # a node could not encode it
    except RecursionError:  # only when max_json_depth is set above the parser's own limit
        raise limit_error(nesting_violation(limits)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def client_id(headers: Headers) -> str | None:
    """The client's own request id (``Idempotency-Key`` or ``X-Request-Id``), if usable: at
    most 128 printable ASCII characters (it is forwarded in a header to the node; a header's
    bytes that are not ASCII reached the HTTP client as text it cannot encode: a 500)."""
    given = headers.get("idempotency-key") or headers.get("x-request-id")
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return None


def refusal_ids(headers: Headers) -> tuple[str, str]:
    """A request refused before it parsed: its request id (the client's own, else a new
    one, as :func:`build_job` makes it) and the id its log line keeps (``Job.logged_id``)."""
    given = client_id(headers)
    if given is None:
        made = new_request_id()
        return made, made
    return given, client_ledger_id(given, client_id_hash(given))


_BROWSER = (b"sec-fetch-site", b"origin")  # what another_sites_page reads; neither: False
_CLIENT_ID = (b"idempotency-key", b"x-request-id")  # what client_id reads; neither: None
_SDK_RETRY = sdk_retry.HEADER.encode()  # the SDK's retry marker (core/sdk_retry.py)
_AUTHORIZATION = b"authorization"  # where a key comes (pipeline.py: Client)


def build_job(rt: Runtime, headers: Headers, raw: bytes, path: str, started: float) -> Job:
    """Validate a request body into a :class:`Job` (raises 400/404)."""
    # the header names once: a look-up of a header the request lacks (most of those read
    # here) is a loop over every header in Starlette's ``Headers.get`` (the names as sent:
    # ASGI's are lower case, as each look-up compares them)
    names = {name for name, _ in headers.raw}
    if not names.isdisjoint(_BROWSER) and another_sites_page(headers):  # no CORS, no reader
        raise Forbidden(
            "this gateway does not serve web pages of other sites: call it from a program, "
            "or from a page this gateway serves (the dashboard's playground)",
            reason="cross_site",
        )
    limits = rt.settings.limits
    body = parse_json_object(raw, limits)
    over = check_body(body, limits)
    if over is not None:
        raise limit_error(over)
    if MESH_CONTINUE in body:  # the gateway's own field to a continuing node (continuation.py)
        raise InvalidRequest(
            f"{MESH_CONTINUE} is set by the gateway when a stream continues on another node; "
            "a request may not carry it",
            param=MESH_CONTINUE,
        )
    if PRIORITY_FIELD in body:  # the gateway's own field to a node (core/priority.py)
        raise InvalidRequest(
            f"{PRIORITY_FIELD} is set by the gateway (requests with an API key go first); "
            "a request may not carry it",
            param=PRIORITY_FIELD,
        )
    unsupported = unsupported_field(body) or unsupported_content(body)
    if unsupported is not None:  # refused, not ignored: the answer would not be what was asked
        name, what = unsupported
        raise UnsupportedParameter(
            f"{name}: {what} is not supported by this mesh (no engine does it); "
            "leave it out or set it to its default",
            param=name,
        )
    unknown = unknown_field(body, _CHAT_KNOWN if path == CHAT_PATH else _COMPLETION_KNOWN)
    if unknown is not None:
        raise UnsupportedParameter(
            f"{unknown}: not a request field of {path} that this mesh knows (OpenAI's, or "
            "the mesh's extensions), so no node would read it; leave it out",
            param=unknown,
        )
    parsed: ChatCompletionRequest | CompletionRequest
    try:
        if path == CHAT_PATH:
            parsed = ChatCompletionRequest.model_validate(body)
            prompt_text = "\n".join(m.text() for m in parsed.messages)
            messages = len(parsed.messages)
        else:
            parsed = CompletionRequest.model_validate(body)
            prompt_text = parsed.prompt_text()
            messages = 0
    except ValidationError as exc:
        raise _over_served(rt, body, exc) or invalid_from_pydantic(exc) from None
    if parsed.stream and parsed.top_logprobs_wanted() is not None:  # streams carry none
        raise UnsupportedParameter(
            "logprobs: log-probabilities are not streamed by this mesh (its stream chunks "
            "carry logprobs: null); ask for them without stream",
            param="logprobs",
        )
    if isinstance(parsed, CompletionRequest) and parsed.echo and parsed.logprobs is not None:
        raise UnsupportedParameter(  # the nodes' entries: the generated tokens only (2026-12-05)
            "logprobs: log-probabilities of an echoed prompt are not computed by this mesh; "
            "ask for logprobs without echo (the prompt is yours already)",
            param="logprobs",
        )
    given = None if names.isdisjoint(_CLIENT_ID) else client_id(headers)
    # a keyed SDK attempt without an id of its own: its count, and its bytes' digest (before
    # any field is stripped below: the client's bytes, as each of its attempts sends them);
    # none without a key (never an implicit key: admit.IdempotencyCheck), so not hashed
    marked = given is None and _SDK_RETRY in names and _AUTHORIZATION in names
    attempt = sdk_retry.retry_count(headers.get(sdk_retry.HEADER)) if marked else None
    digest = "" if attempt is None else sdk_retry.body_digest(raw)
    ext = read_extensions(body, headers.get("x-mesh-wait") if b"x-mesh-wait" in names else None)
    if ext.present or has_withheld(body):  # else the client's bytes go on unchanged
        body = forwarded_body(body)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    model = parsed.model
    spec = get_spec(model)
    if spec is None and not rt.table.hosts(model):
        known = known_model_ids(rt.table)
        raise ModelNotFound(
            f"model {model!r} does not exist in the mesh; models: {', '.join(known)}",
            param="model",
            models=known,
        )
    max_tokens = parsed.effective_max_tokens(0)
    catalog_context = None if spec is None else spec.context_length
    if spec is None:  # a custom model: the custom price, the largest context its nodes declare
        spec = custom_spec(model, sha256=None, context_length=custom_context(rt.table, model))
    # the context it is served with now (its live nodes'; the chosen node's is checked in send)
    ctx = rt.served_contexts.get(rt.table, spec)
    check_context(
        prompt_text, max_tokens or 1, ctx, model, context_source(ctx, spec.context_length)
    )
    price = spec.price
    choices = parsed.n or 1
    echo = isinstance(parsed, CompletionRequest) and bool(parsed.echo)
    request_id = given or new_request_id()
    # the nodes get a gateway-made id, never the client's (ARCHITECTURE.md "The node's
    # request id"); none to make when the gateway made the request id
    node_request_id = "" if given is None else new_request_id()
    # the client's id hashed once: the ledger's ``c-`` id is cut from it, the receipt signs it
    hashed = "" if given is None else client_id_hash(given)
    # the prompt's bound counted once: the estimate's, and Job.prompt_bound's (kept below)
    bound = estimate_prompt_tokens(prompt_text, messages)
    most = estimate(price, prompt_text, max_tokens, spec.context_length, messages, choices,
                    prompt_bound=bound)  # fmt: skip
    job = Job(
        path=path,
        model=model,
        body=body,
        raw=raw,
        stream=parsed.stream,
        prompt_text=prompt_text,
        messages=messages,
        max_tokens=max_tokens,
        price=price,
        estimate=most,
        catalog_context=catalog_context,
        request_id=request_id,
        started=started,
        deadline=started + rt.settings.request_timeout_s,
        ext=ext,
        client_id=given,
        sdk_retry=attempt,
        body_digest=digest,
        settle_key=(
            request_id if given is None else settle_key_for(given, hashed, path, node_request_id)
        ),
        client_id_hash=hashed,
        node_request_id=node_request_id,
        # the content chunks a stream's answer may have: max_tokens, or without one the
        # whole context (not the context less the *estimated* prompt: the estimate counts
        # a token a byte, an upper bound, a real tokenizer often 4 bytes a token or more, so
        # an honest node had room past it and was cut off as a liar), for each
        # of n choices (1 unless an operator raised max_n), and one more for a completion's
        # echoed prompt (our nodes send it as one chunk). Without max_tokens each node part
        # is held to its own node's context, at most this one (Job.limit_on).
        token_limit=token_limit(max_tokens, spec.context_length, choices, echo),
        context=spec.context_length,
        choices=choices,
        stop_bytes=stop_slack(parsed.stop_list()),
        echo=echo,
    )
    # Job.prompt_bound (core/once.py's cached_property) kept as the estimate counted it, the
    # same function of the job's own prompt_text and messages: not counted again (perf45b)
    job.__dict__["prompt_bound"] = bound
    return job


def settle_key_for(
    client_id: str, hashed: str = "", path: str = CHAT_PATH, node_request_id: str = ""
) -> str:
    """A settlement key (the ledger's ``request_id``) for a request the client named: the
    id's :func:`client_ledger_id`, ``~``, a suffix unique to the request, since clients may
    reuse their ids (``settlements`` keys are unique), ``.`` and :func:`path_tag`; the
    answer's ``mesh.ledger_request_id`` names it. The suffix is the first 16 hex digits of
    the ``req-`` id the nodes get (``node_request_id``, 128 random bits:
    :func:`~LLM_Mesh.core.served.ledger_suffix`), so a node's operator finds the entries
    paying what its node served (``ledger statement --served``) without the client's id;
    random without one."""
    hashed = hashed or client_id_hash(client_id)
    suffix = ledger_suffix(node_request_id) if node_request_id else uuid.uuid4().hex[:16]
    return f"{client_ledger_id(client_id, hashed)}~{suffix}.{path_tag(hashed, path)}"


def path_tag(hashed: str, path: str) -> str:
    """8 hex digits of the request's path (chat or completions) bound to its client id's
    hash: a client's id runs once per path (``admit.IdempotencyCheck`` keys it so), and a
    lone registry's lookup after a restart (``paid_ids.py``) looks for its paid rows of the
    same path only (found 2026-12-04, review: it refused the same id on the other path). Of
    no use to a reader of the ledger who does not know the client's id."""
    return hashlib.sha256(f"llm-mesh/ledger-path/v1\0{hashed}\0{path}".encode()).hexdigest()[:8]


_TOKEN_CAPS = (("max_tokens",), ("max_completion_tokens",))


def _over_served(
    rt: Runtime, body: dict[str, Any], exc: ValidationError
) -> ContextLengthExceeded | None:
    """A token count over the mesh's cap (``schemas.MAX_TOKENS_LIMIT``), the request's one
    problem, said as over its model's served context (``listing.served``) where that is the
    smaller figure: found 2026-12-06 (context34), ``ask --max-tokens 9999999`` said "exceeds
    32768" (the cap) of gemma-3-270m, served with 4096; ``None``: pydantic's words stand."""
    errors = exc.errors(include_url=False)
    model = body.get("model")
    if len(errors) != 1 or not isinstance(model, str) or tuple(errors[0]["loc"]) not in _TOKEN_CAPS:
        return None
    field, given, spec = errors[0]["loc"][0], errors[0].get("input"), get_spec(model)
    if errors[0]["type"] != "less_than_equal" or type(given) is not int:
        return None
    if spec is None and rt.table.hosts(model):
        spec = custom_spec(model, sha256=None, context_length=custom_context(rt.table, model))
    ctx = MAX_TOKENS_LIMIT if spec is None else rt.served_contexts.get(rt.table, spec)
    if spec is None or ctx >= MAX_TOKENS_LIMIT:  # the cap is the smaller figure
        return None
    try:  # given > the cap > ctx: refused
        check_context("", given, ctx, model, context_source(ctx, spec.context_length))
    except ContextLengthExceeded as refusal:
        said = refusal.message.replace("max_tokens=", f"{field}=", 1)
        return ContextLengthExceeded(said, param=str(field), **refusal.extra)
    return None  # pragma: no cover
