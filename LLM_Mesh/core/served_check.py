"""An operator's served requests held against what the public ledger paid its account.

What ``llm-mesh ledger statement --operator --served FILE`` decides (pure: the caller
reads the nodes' served logs, ``core/served.py``, and the whole log). The caller gives, per
:func:`~LLM_Mesh.core.served.ledger_key` of a served request, every entry of the checked log
under that key (``settle``, ``hold``, ``fee``, whoever they pay): the audit recomputed the
signed tree over every entry, so no entry of the request can be left out.

For every request the logs say a node answered (``outcome: ok``), grouped by request (a
stream continued on another node of the same operator has two records under one id):

- **unpaid**: no ``settle`` entry of the request pays the operator's account, older than
  :data:`~LLM_Mesh.core.ledger_statement.PENDING_S` before the newest signed checkpoint
  (newer: *pending*, said, not a finding). Said apart when its share went to another
  account (a ``settle`` of the request paying someone else);
- **underpaid**: the ``settle`` entries paying the account for the request add up to less
  than the published price of the tokens the node counted (``core/pricing.py``: the
  registry's published price of the model, ``GET /v1/pricing``, else the catalog's, else
  the custom price; a ``continued`` part at its completion only, though it is paid the
  prompt too (``core/pricing.part_costs``: the prompt goes with the last part that
  delivered a token; its record's count holds the text before it, which the node cannot
  tell apart); less the network's fee at ``fee_bps``, rounded up since 2026-12-06,
  ``money34``: a payment of before, its fee rounded down, is paid at least that): a
  registry paying less than its own rule. A part whose stream broke and was continued is paid the tokens
  relayed, its prompt with the part after it: a node that logged such a part ``ok`` (it
  finished, its connection broke) shows as underpaid by its prompt;
- **another fee**: paid less than that, but the request's own entries state a fee (the
  ``fee`` entry each ``settle`` is followed by, ``registry/settle_ledger.transfers``) and
  the share and its fee add up to at least the price of the tokens: the request was cut at
  another fee than ``fee_bps``, the one the registry publishes *now* (a fee of before a
  change, which must not make an old honest payment look wrong; or a registry taking more
  than it publishes): said with the fee its entries state, not a finding, unless
  ``fee_bps`` is the operator's own (``strict``: ``--fee-bps``, the fee the operator says
  applied throughout);
- a record given twice (the same line in two files: a copy of a node's log) is one
  (found 2026-12-05: it doubled what the request was owed: "paid less");
- each entry pays one request: one already counted for another request (two ids the
  registry made with the same first 16 hex digits, under one client-chosen id's key) does
  not count again;
- **held**: ``hold`` entries of the request to held accounts (``held:``) adding up to the
  share (the node was quarantined: its share waits in its held account until the admin
  clears or revokes it): said, not a finding; a hold of less, or to another account, is
  judged as a payment of less (found 2026-12-05: any hold was "held").

Paid more than expected is not a finding. Requests ``cancelled`` or ending in an error,
and those no gateway sent (a standalone node's local clients), are counted, not judged (the gateway pays a part cut off for what it relayed, which the
node cannot know). Credits to the account under a key no record has are counted
(*unmatched*: a node whose log was not given, a record past the log's retention, a
registry older than the ledger suffix): they cost the operator nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from LLM_Mesh.core.catalog import (
    CUSTOM_COMPLETION_PRICE_PER_1K,
    CUSTOM_PROMPT_PRICE_PER_1K,
    get_spec,
)
from LLM_Mesh.core.ledger_entry import is_held_account
from LLM_Mesh.core.ledger_statement import PENDING_S
from LLM_Mesh.core.pricing import MAX_FEE_BPS, Price, part_costs, split
from LLM_Mesh.core.served import Served, record_keys

__all__ = [
    "ServedReport", "expected_share", "keys_of", "part_cost", "published_price",
    "registry_prices", "served_report",
]  # fmt: skip


@dataclass
class ServedReport:
    account: str
    fee_bps: int
    requests: int = 0  # answered requests judged (distinct ids)
    expected: int = 0  # µNT the price rule gives the operator for them
    paid: int = 0  # µNT settle entries paid the account for them
    not_judged: int = 0  # records cancelled or ending in an error
    unmatched: int = 0  # settle entries to the account under a key no record has
    unmatched_amount: int = 0
    findings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    other_fee: list[str] = field(default_factory=list)  # cut at another fee (their entries)
    strict: bool = False  # fee_bps is the operator's own: another fee is a finding

    @property
    def ok(self) -> bool:
        return not self.findings


def expected_share(price: Price, r: Served, fee_bps: int) -> int:
    """What the operator is owed for record ``r`` under ``price``: the part's cost (its
    prompt with it unless it continued another node's stream) less the network's fee."""
    return split(part_cost(price, r), fee_bps)[0]


def _when(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def served_report(
    account: str,
    records: Sequence[Served],
    by_key: Mapping[str, Sequence[Mapping[str, Any]]],
    credits: Sequence[Mapping[str, Any]],
    *,
    price_of: Callable[[str], Price],
    fee_bps: int,
    signed_time_us: int | None,
    strict: bool = False,
) -> ServedReport:
    """The report (see the module docstring). ``by_key``: per ledger key, the entries of
    the whole log under it; ``credits``: every ``settle`` entry paying ``account`` (to
    count those no record explains); ``price_of``: a model's published price; ``strict``:
    ``fee_bps`` is the operator's word, not the registry's fee of now."""
    out = ServedReport(account, fee_bps, strict=strict)
    groups: dict[str, list[Served]] = {}
    for r in dict.fromkeys(records):  # a record given twice (a copy of a log) counts once
        if r.outcome != "ok" or not r.gateway:  # not answered, or no gateway's request
            out.not_judged += 1
            continue
        groups.setdefault(r.request_id, []).append(r)
    matched: set[int] = set()
    for rid, group in groups.items():
        rows: dict[int, Mapping[str, Any]] = {}
        for key in record_keys(rid):
            for e in by_key.get(key, ()):
                seq = e.get("seq")
                if type(seq) is int:
                    rows[seq] = e
        entries = [rows[s] for s in sorted(rows)]
        # an entry pays one request: a registry that gave two requests' nodes ids with the
        # same first 16 hex digits cannot pay both with one client-chosen id's entry
        mine = [
            e for e in entries
            if e.get("kind") == "settle" and e.get("to") == account and e["seq"] not in matched
        ]  # fmt: skip
        matched.update(int(e["seq"]) for e in mine)
        _judge(out, rid, group, entries, mine, price_of, signed_time_us)
    for e in credits:
        if e.get("seq") not in matched and e.get("to") == account and e.get("kind") == "settle":
            out.unmatched += 1
            out.unmatched_amount += int(e.get("amount") or 0)
    return out


def _judge(
    out: ServedReport,
    rid: str,
    group: list[Served],
    entries: list[Mapping[str, Any]],
    mine: list[Mapping[str, Any]],
    price_of: Callable[[str], Price],
    signed_time_us: int | None,
) -> None:
    expected = sum(expected_share(price_of(r.model), r, out.fee_bps) for r in group)
    if expected == 0:
        return  # no completion: nothing is owed, nothing written
    out.requests += 1
    out.expected += expected
    paid = sum(int(e.get("amount") or 0) for e in mine)
    out.paid += paid
    last = max(r.time_ms for r in group)
    first = group[0]
    name = (
        f"request {rid} ({first.model}, {sum(r.completion_tokens for r in group)} completion "
        f"tokens, served {_when(last)} UTC by {', '.join(sorted({r.node for r in group}))})"
    )
    holds = [e for e in entries if e.get("kind") == "hold"]
    if not mine and holds:
        # held only when the whole share went to a held account (found 2026-12-05: any
        # hold, 1 µNT or to any account, made a request "held, not judged")
        held = sum(int(e.get("amount") or 0) for e in holds if is_held_account(e.get("to")))
        if held >= expected:
            out.held.append(
                f"{name}: its share went to held account {holds[0].get('to')} (entry "
                f"{holds[0].get('seq')}): the node was quarantined; paid to you if the admin "
                "clears it"
            )
        else:
            where = ", ".join(
                f"entry {e.get('seq')}: {e.get('amount')} µNT to {e.get('to')}" for e in holds
            )
            out.findings.append(
                f"{name}: held {held} µNT in a held account ({where}), the published price "
                f"of the tokens served less the {out.fee_bps} bps fee is {expected} µNT"
            )
        return
    if not mine:
        if signed_time_us is None or last * 1000 > signed_time_us - PENDING_S * 1_000_000:
            out.pending.append(f"{name}: no entry pays it yet (run again later)")
            return
        others = [e for e in entries if e.get("kind") == "settle"]
        if others:
            where = ", ".join(f"entry {e.get('seq')} to {e.get('to')}" for e in others)
            out.findings.append(
                f"{name}: owed {expected} µNT, paid to another account ({where}), not {out.account}"
            )
        else:
            out.findings.append(
                f"{name}: owed {expected} µNT, and no entry of the whole log pays it "
                f"({len(entries)} entries name it)"
            )
        return
    if paid >= expected:
        return
    where = ", ".join(f"entry {e.get('seq')}: {e.get('amount')} µNT" for e in mine)
    parts = _parts(entries, mine)
    fees = sum(f for _, f in parts)
    cost = sum(part_cost(price_of(r.model), r) for r in group)
    if fees and paid + fees >= cost:  # the price held; the entries state another fee
        line = (
            f"{name}: paid {paid} µNT ({where}): its entries state a {fees} µNT fee of "
            f"{paid + fees} µNT ({_bps_said(parts)}), not the {out.fee_bps} bps fee "
            f"({expected} µNT to you)"
        )
        (out.findings if out.strict else out.other_fee).append(line)
        return
    out.findings.append(
        f"{name}: paid {paid} µNT ({where}), the published price of the tokens served "
        f"less the {out.fee_bps} bps fee is {expected} µNT"
        + (f" (its entries state a {fees} µNT fee: {paid + fees} µNT of {cost})" if fees else "")
    )


def part_cost(price: Price, r: Served) -> int:
    """Record ``r``'s part's cost under ``price``, the fee in it (:func:`expected_share`)."""
    return part_costs(price, 0 if r.continued else r.prompt_tokens, [r.completion_tokens])[0]


def _parts(
    entries: Sequence[Mapping[str, Any]], mine: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int]]:
    """``(amount, fee)`` of each part ``mine`` pays, as the request's entries state them:
    each ``settle`` is followed, in the same batch, by its part's ``fee`` entry
    (``registry/settle_ledger.transfers``; none: a fee of 0)."""
    by_seq = {e.get("seq"): e for e in entries}
    out: list[tuple[int, int]] = []
    for e in mine:
        nxt = by_seq.get(int(e["seq"]) + 1)
        fee = 0
        if nxt is not None and nxt.get("kind") == "fee" and nxt.get("from") == e.get("from"):
            fee = int(nxt.get("amount") or 0)
        out.append((int(e.get("amount") or 0) + fee, fee))
    return out


def _bps_said(parts: Sequence[tuple[int, int]]) -> str:
    """The fees in basis points that cut every part as stated (``network_fee``: rounded
    up; none, those of the rule before 2026-12-06, ``network_fee_down``: rounded down), as
    words: ``"800 bps"``, ``"667 to 888 bps"``, ``"... bps, rounded down as before ..."``,
    or none."""
    lo, hi = _bps_range(parts, up=True)
    if lo > hi:
        lo, hi = _bps_range(parts, up=False)
        if lo > hi:
            return "no one fee in basis points cuts them all so"
        said = f"{lo} bps" if lo == hi else f"{lo} to {hi} bps"
        return f"{said}, rounded down as before 2026-12-06"
    return f"{lo} bps" if lo == hi else f"{lo} to {hi} bps"


def _bps_range(parts: Sequence[tuple[int, int]], *, up: bool) -> tuple[int, int]:
    """The fees (basis points, ``lo`` to ``hi``; none when ``lo > hi``) that cut every part
    as stated, the fee rounded ``up`` (⌈amount × bps / 10000⌉) or down."""
    lo, hi = 0, MAX_FEE_BPS
    for amount, fee in parts:
        if amount <= 0:
            continue
        if up:  # (fee - 1) × 10000 < amount × bps <= fee × 10000
            lo = max(lo, (fee - 1) * MAX_FEE_BPS // amount + 1)
            hi = min(hi, fee * MAX_FEE_BPS // amount)
        else:  # fee × 10000 <= amount × bps < (fee + 1) × 10000
            lo = max(lo, -(-fee * MAX_FEE_BPS // amount))
            hi = min(hi, -(-(fee + 1) * MAX_FEE_BPS // amount) - 1)
    return lo, hi


def keys_of(records: Sequence[Served]) -> set[str]:
    """Every ledger key the records' entries may have (what the caller keeps while
    reading the log)."""
    return {k for r in records for k in record_keys(r.request_id)}


def _price(obj: Any, what: str) -> Price:
    if not isinstance(obj, Mapping):
        raise ValueError(f"GET /v1/pricing: {what} is not a price")
    try:
        return Price(obj.get("prompt_per_1k"), obj.get("completion_per_1k"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"GET /v1/pricing: {what}: {exc}") from None


def registry_prices(pricing: Mapping[str, Any]) -> tuple[int, Callable[[str], Price]]:
    """The fee (basis points) and a model's price as a registry's ``GET /v1/pricing``
    publishes them (``registry/pricing_api.py``): its ``models``' prices, its ``custom``
    price for a model it does not list, else :func:`published_price`. ``ValueError`` for
    an answer that is not that (the registry is not trusted to be well formed)."""
    fee = pricing.get("network_fee_bps")
    if type(fee) is not int or not 0 <= fee <= MAX_FEE_BPS:
        raise ValueError(f"GET /v1/pricing: network_fee_bps is not 0 to {MAX_FEE_BPS}")
    models = pricing.get("models")
    if not isinstance(models, Mapping):
        raise ValueError("GET /v1/pricing: models is not an object")
    listed = {str(m): _price(p, f"models[{m!r}]") for m, p in models.items()}
    custom = _price(pricing["custom"], "custom") if "custom" in pricing else None

    def price_of(model: str) -> Price:
        found = listed.get(model)
        if found is not None:
            return found
        return custom if custom is not None and get_spec(model) is None else published_price(model)

    return fee, price_of


def published_price(model: str) -> Price:
    """A model's public price: the catalog's (``core/catalog.py``), else the custom price."""
    spec = get_spec(model)
    if spec is not None:
        return spec.price
    return Price(CUSTOM_PROMPT_PRICE_PER_1K, CUSTOM_COMPLETION_PRICE_PER_1K)
