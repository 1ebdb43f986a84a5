"""The request type of the gateway's pipeline: a :class:`Job`, its :class:`Client` and :class:`Tally`.

The parse stage (:mod:`~LLM_Mesh.registry.parse`) builds the :class:`Job`, the
validated request, which no later stage changes. What became of it is the
:class:`Tally`: the send stage writes who answered, after how many attempts, the
time to first token, the node's token counts and what it relayed of each node (for the
receipt); the account stage reads it to build the ``mesh`` object and the request's
record and writes the cost and the receipt (``node_receipts``, ``receipt_hash``:
what settlement needs, docs/ARCHITECTURE.md "Receipts"). Who sent it is the
:class:`Client`: its address, then what the admit stage learns (its API key, the
``x-ratelimit-*`` headers its answer carries, the tokens to settle when usage is known,
the :class:`Payment` reserved for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response

from LLM_Mesh.core.once import cached_property
from LLM_Mesh.core.pricing import Price, estimate_prompt_tokens, usual_prompt_tokens
from LLM_Mesh.core.prompt_count import PromptClaim
from LLM_Mesh.core.ratelimit import address_scope
from LLM_Mesh.core.receipt import Part, client_ledger_id
from LLM_Mesh.core.receipt_check import Observed
from LLM_Mesh.core.stream_guard import node_context, token_limit
from LLM_Mesh.registry.extensions import NONE, Extensions
from LLM_Mesh.registry.ports import ApiKeyRecord

__all__ = ["MAX_USAGE_COUNT", "Charged", "Client", "Job", "Payment", "Tally", "usage_counts"]


@dataclass(frozen=True)
class Job:
    """One validated request, ready to forward."""

    path: str  # "/v1/chat/completions" or "/v1/completions"
    model: str
    body: dict[str, Any]  # without the mesh extension fields and core/withheld.py's
    raw: bytes  # what a non-stream forwards: the client's bytes unless fields were stripped
    stream: bool
    prompt_text: str
    max_tokens: int
    price: Price  # the model's, micro-NetworkTokens per 1,000 tokens (core/pricing.py)
    estimate: int  # the most it may cost (µNT): reserved from the payer before any node runs
    catalog_context: int | None  # checked by the parse stage (send does not check it again)
    request_id: str
    started: float  # runtime clock when the gateway received it
    deadline: float = float("inf")  # started + request_timeout_s: no new attempt after it
    ext: Extensions = NONE
    client_id: str | None = None  # the client's Idempotency-Key / X-Request-Id, if usable
    # with an Authorization header and no client id: the SDK's retry marker's count
    # (core/sdk_retry.py; None: no marker, or none of those) and the SHA-256 of the body
    # bytes the client sent (""), for the implicit key
    sdk_retry: int | None = None
    body_digest: str = ""
    # the request's settlement key (settlements.request_id, the ledger's request_id): the
    # request id, made unique when the client chose it (clients may reuse theirs)
    settle_key: str = ""
    # the id the nodes get (X-Request-Id) and sign into their receipt parts, when the client
    # chose the request id: a fresh gateway-made ``req-`` id, so that nodes never see the
    # client's (it may name someone) nor can tell user traffic from probes by its form;
    # "": the request id itself (gateway-made). Read it as :attr:`forwarded_id`.
    node_request_id: str = ""
    # core.receipt.client_id_hash(client_id) when the client chose the id (made once by the
    # parse stage, with the ledger's ``c-`` id): the countersigned receipt signs it; "": none
    client_id_hash: str = ""
    # the most tokens (content chunks) a stream's answer may have: max_tokens (without it,
    # ``context``) per choice, + 1 for an echoed prompt (core/stream_guard.token_limit); a
    # stream is cut off past it (without max_tokens: past ``limit_on`` its node's context);
    # 0: unbounded
    token_limit: int = 0
    # the context the estimate is priced at: the catalog's, or for a custom model the
    # largest any node declares for it (at most stream_guard.MAX_CONTEXT); 0: not known
    context: int = 0
    choices: int = 1  # n
    # the UTF-8 bytes of the request's longest ``stop`` string (core/delivered.stop_slack):
    # added to each choice's slack in the completion a node part is priced for
    stop_bytes: int = 0
    echo: bool = False  # a completion that echoes its prompt
    # chat messages (each adds its template's tokens to the estimate's prompt); 0: a completion
    messages: int = 0

    # forwarded_id and logged_id kept once read (core/once.py: a frozen job's same value;
    # read three and two times a request: perf45)
    @cached_property
    def forwarded_id(self) -> str:
        """The request id as the nodes get it, and as the countersigned receipt names it."""
        return self.node_request_id or self.request_id

    @cached_property
    def logged_id(self) -> str:
        """The request id the request log (``requests.request_id``) and the gateway's request
        line keep: the gateway's own ``req-`` id, or for an id the client chose (it may name
        someone: ``alice-session-42``) the public ledger's ``c-`` id of it (its hash, as
        :func:`~LLM_Mesh.core.receipt.client_ledger_id` makes it; an operator finds a user's
        reported id by hashing it: ``llm-mesh ledger id ID``), never the id in clear."""
        if self.client_id is None:
            return self.request_id
        return client_ledger_id(self.client_id, self.client_id_hash)

    @cached_property
    def prompt_bound(self) -> int:
        """The most prompt tokens a node may be paid for: the estimate's bound of the prompt
        (``pricing.estimate_prompt_tokens``: its UTF-8 bytes + 8 a chat message + 16, above an
        honest node's count: tests/core/test_prompt_estimate.py with the real tokenizer).
        A node's larger ``usage.prompt_tokens`` is priced at this (found 2026-12-04: a node
        paid at most for the completion it delivered could claim a huge prompt instead and
        be paid the whole estimate). Computed once a job: the account stage reads it for the
        price, the ``mesh`` object and the record (a non-ASCII prompt is encoded for it);
        the parse stage's job has it already, the count its estimate made (perf45b).

        A chat request's ``tools``, ``tool_choice``, ``response_format`` (refused in the
        parse stage unless "off": ``core/unsupported.py``; the off values are forwarded) are
        left out, as the estimate leaves them out, and rightly (review 2026-12-04, checked):
        no mesh node renders them into its prompt.
        The node builds its generation from the messages' role and text only
        (``node/app.py``: ``GenerationRequest`` has no such field); the llama.cpp engine
        renders those with its catalog template (``core/prompt.py``), and an upstream
        engine forwards nothing else (``openai_upstream._text_only``). An engine that came
        to render tools would need them counted here and in ``pricing.estimate``."""
        return estimate_prompt_tokens(self.prompt_text, self.messages)

    @property
    def text_only(self) -> bool:
        """Whether a node's part is priced by its choices' ``content`` only (a catalog model:
        ``core/delivered.py``), not also reasoning, refusal or tool calls (a custom model)."""
        return self.catalog_context is not None

    def prompt_usual(self) -> int:
        """A usual count of the prompt's tokens (``pricing.usual_prompt_tokens``)."""
        return usual_prompt_tokens(self.prompt_text, self.messages)

    def limit_on(self, declared: object) -> int:
        """``token_limit`` on a node that declares ``declared`` as the model's context: without
        ``max_tokens``, that context (none declared: ``context``), never past ``context`` (what
        the payer's reservation covers) nor ``token_limit``."""
        if self.max_tokens > 0 or self.context <= 0 or self.token_limit <= 0:
            return self.token_limit
        served = min(node_context(declared, self.context), self.context)
        return min(self.token_limit, token_limit(0, served, self.choices, self.echo))


# (node id, µNT the payer pays for that node's part, fee included, the network's fee of it)
Charged = tuple[str, int, int]


class Payment(Protocol):
    """What the admit stage reserved for a request (``registry/charge.py``): the account
    stage pays it with the exact parts, or voids it, exactly once."""

    payer: str  # the ledger account that pays
    estimate: int
    # its payment's write began (``pay`` with parts): it may have committed, whatever became
    # of the request since (the write goes on when the request is cancelled), so its
    # request id is never freed for a retry to run and pay again
    written: bool

    @property
    def fee_bps(self) -> int:
        """The network's fee of each part, in basis points (``settlement.fee_bps``)."""

    async def pay(self, parts: Sequence[Charged], receipt_hash: str | None) -> None:
        """Record ``(node id, amount, fee)`` per part (µNT; the amount includes the fee, as
        the account stage priced them once: ``account.charge_parts``) before the answer is
        released; no part with an amount: void."""

    def void(self) -> None:
        """Nothing to pay (a failure, an answer without tokens)."""


class Client:
    """Who sent a request: its address and ``Authorization`` header, then what admission
    learnt (the key, the ``x-ratelimit-*`` headers, a token charge to settle)."""

    __slots__ = (
        "_give_back", "_settle", "address", "authorization", "headers", "key", "payment",
        "prefetched",
    )  # fmt: skip

    def __init__(self, address: str, authorization: str | None = None) -> None:
        self.address = address_scope(address)  # an IPv6 client is its /64
        self.authorization = authorization
        self.key: ApiKeyRecord | None = None  # set by authentication; None: anonymous
        self.headers: tuple[tuple[str, str], ...] = ()  # for the answer, whatever it is
        self._settle: Callable[[int], None] | None = None
        self._give_back: list[Callable[[], None]] = []
        self.payment: Payment | None = None  # set by the admit stage when settlement is on
        # Redis takes made ahead, in one round trip with the rate limit, for the checks that
        # claim them (registry/redis_admit.py): name -> its give-back, None: refused
        self.prefetched: dict[str, Callable[[], None] | None] | None = None

    @property
    def scope(self) -> str:
        """Whose limits and idempotency keys: the API key's id, else the address."""
        return f"key:{self.key.key_id}" if self.key is not None else f"ip:{self.address}"

    def on_usage(self, settle: Callable[[int], None]) -> None:
        """Call ``settle`` with the tokens the request really used, once it is known."""
        self._settle = settle

    def used(self, tokens: int) -> None:
        """The request's real token usage (0 when it got no answer); settles once."""
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(tokens)

    def on_refusal(self, give_back: Callable[[], None]) -> None:
        """Call ``give_back`` if the admit stage ends without sending the request on (a later
        check refused it, it raised or was cancelled, an answer was replayed): what a check
        took for it before any work (the anonymous total) is returned."""
        self._give_back.append(give_back)

    def refused(self) -> None:
        """The admit stage ended without sending the request on: give back (once)."""
        give_back, self._give_back = self._give_back, []
        for f in reversed(give_back):
            f()

    def admitted(self) -> None:
        """The admit stage sent the request on: nothing taken is given back from here."""
        self._give_back = []

    def decorate(self, response: Response) -> Response:
        """``response`` with this client's ``x-ratelimit-*`` headers."""
        for name, value in self.headers:
            response.headers[name] = value
        return response


class Tally:
    """What became of one job, written stage by stage (see the module docstring)."""

    __slots__ = (
        "attempts",
        "before",
        "charged",
        "completion_cap",
        "completion_tokens",
        "cost",
        "error_code",
        "failed_nodes",
        "node_id",
        "node_receipts",
        "outcome",
        "output_sha256",
        "outputs",
        "parts",
        "prompt_claim",
        "prompt_tokens",
        "receipt",
        "receipt_hash",
        "said_prompt_tokens",
        "ttft_ms",
        "waited_s",
    )

    def __init__(self) -> None:
        self.node_id: str | None = None  # the node whose answer the client got (last)
        self.attempts = 0  # node attempts in all, refusals included
        self.waited_s = 0.0  # the opt-in wait for a first node
        self.failed_nodes: list[str] = []  # nodes that broke a stream, in order
        # (node id, completion tokens delivered) of each earlier node of a continued stream
        self.parts: list[tuple[str, int]] = []
        self.ttft_ms: float | None = None  # the gateway's time to first token
        self.before = 0  # tokens the client got from earlier nodes of a continued stream
        self.prompt_tokens = 0  # the answering node's usage (prompt of the original request)
        # ... its prompt count as its stream opened (core/prompt_count.py; 0: not said)
        self.said_prompt_tokens = 0
        # ... and the node's signature of it (core/prompt_count.checked_claim; None: not
        # signed, or not said): a count unsigned is not said; a cut part's receipt keeps it
        self.prompt_claim: PromptClaim | None = None
        # the answering node's completion tokens as priced: its count, at most the bytes
        # of text it delivered + slack (core/delivered.py); its own count is in ``outputs``
        self.completion_tokens = 0
        # that part's cap (core/delivered.completion_cap: its bytes + slack), for the usage
        # audit (registry/usage_audit.py); -1: not known (no final chunk, a continued stream)
        self.completion_cap = -1
        self.outcome: str | None = None  # ok | error | cancelled (None: not ended yet)
        self.error_code: str | None = None
        self.cost = 0  # micro-NetworkTokens charged (account stage)
        # (node id, µNT, fee) of each part the client pays, as the account stage priced them
        # once (``account.charge_parts``): the receipt signs these, ``cost`` is their sum, the
        # payment writes them to the ledger. None: not priced yet
        self.charged: list[Charged] | None = None
        # receipts (core/receipt.py). The send stage: what it relayed of each node, in order
        # (a part per node that generated text), and the hash of the whole output.
        self.outputs: list[Observed] = []
        self.output_sha256: str | None = None
        # the account stage: each node's part as countersigned (``Part.payable``: whether
        # that node is paid for it), the receipt's wire form and its hash (the ledger entry
        # commits to it); None / () when no receipt was made (no final chunk, no answer)
        self.node_receipts: tuple[Part, ...] = ()
        self.receipt: dict[str, Any] | None = None
        self.receipt_hash: str | None = None


def usage_counts(usage: Any) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` of a node's ``usage``; ``(0, 0)`` when absent.

    A node's numbers are not trusted: a negative count would fail pricing (and leak the
    attempt) instead of answering; a count past :data:`MAX_USAGE_COUNT` is read as that
    (2^63 failed the receipt's encoding, a 500 with the payer's reservation left pending;
    2^31 failed the ``requests`` log's batch on PostgreSQL, other nodes' rows with it).
    The charge is capped at the estimate anyway, and a part's completion count at the text it
    delivered (``core/delivered.py``); a node that signed a larger count than it sent has an
    ``invalid`` receipt (its counts are not what was relayed): not paid.
    """
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


# the most tokens a node's usage may report: the request log's INTEGER columns
MAX_USAGE_COUNT = 2**31 - 1


def _count(value: Any) -> int:
    if not isinstance(value, int):
        return 0
    return min(max(0, value), MAX_USAGE_COUNT)
