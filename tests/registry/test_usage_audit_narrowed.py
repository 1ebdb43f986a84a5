"""A hostile user cannot steer routed traffic onto one honest node to frame it in the usage
audit (``registry/usage_audit.py``): a request the gateway could send only to some of the
model's nodes is not counted when it asked ``trusted_only`` (as a pinned one is not), and
is compared only among the nodes that could take it when its prompt and ``max_tokens`` do
not fit another node's declared context (so a colluding id declaring a tiny context does
not blind the audit either).

Else a user sends hundreds of requests of digits (a token a byte: a share of its caps of
0.87 against the mix's 0.26) with ``trusted_only`` (the model's one trusted node is an
established, honest one) or with ``max_tokens`` above the other nodes' context (only the
target's larger context takes them): the router has no choice, the target's share in each
window is 2-3 times its peers', and it is quarantined and its operator's earnings held."""

from __future__ import annotations

import dataclasses

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.usage_audit import AuditPolicy
from LLM_Mesh.registry.extensions import Extensions
from LLM_Mesh.registry.job import Job, Tally
from LLM_Mesh.registry.usage_audit import UsageAuditor

MODEL = "mistral-7b"
POLICY = AuditPolicy(min_requests=20, check_every=1, bucket_s=300.0)
CONTEXTS = {"target": 32_768, "a": 4096, "b": 4096}


def _answer(
    auditor: UsageAuditor, node: str, completion: int, *, max_tokens: int = 200,
    ext: Extensions | None = None,
) -> bool:  # fmt: skip
    """One answer of 100 bytes (cap 116) to a 200-byte prompt; a verdict?"""
    spec = get_spec(MODEL)
    assert spec is not None
    job = Job(path="/v1/completions", model=MODEL, body={}, raw=b"{}", stream=False,
              prompt_text="7" * 200, max_tokens=max_tokens, price=spec.price, estimate=1,
              catalog_context=spec.context_length, request_id="r", started=0.0)  # fmt: skip
    if ext is not None:
        job = dataclasses.replace(job, ext=ext)
    tally = Tally()
    tally.node_id, tally.completion_cap = node, 116
    tally.completion_tokens, tally.prompt_tokens = completion, 50
    return auditor.answered(job, tally) is not None


def _frame(contexts: dict[str, int] = CONTEXTS, **kw: object) -> UsageAuditor:
    auditor = UsageAuditor(None, policy=POLICY, contexts=lambda m: contexts.values())
    for _ in range(40):  # prose to the peers (routed), digits only the target could take
        _answer(auditor, "a", 30)
        _answer(auditor, "b", 30)
        _answer(auditor, "target", 100, **kw)  # type: ignore[arg-type]
    return auditor


def test_requests_only_trusted_nodes_may_take_are_not_counted() -> None:
    auditor = _frame(ext=Extensions(trusted_only=True))
    assert not auditor.verdicts
    assert auditor.audit.verdict("target", MODEL) is None


def test_requests_opted_in_to_nodes_that_may_keep_prompts_are_compared_among_themselves() -> None:
    """Such nodes get only opted-in requests (found 2026-12-06: a user could fill them with
    digits while the others get prose by default, ``core/prompt_keeping.py``): the target's
    opted-in digits are not compared with its peers' prose."""
    auditor = _frame(ext=Extensions(allow_prompt_keeping=True))
    assert not auditor.verdicts
    assert auditor.audit.verdict("target", MODEL) is None


def test_a_liar_among_the_opted_in_requests_is_flagged() -> None:
    """Found 2026-12-06 (keepers34): opted-in requests were left out of the audit, so a node
    that may keep prompts (it gets no other request) was never audited; now they are, as a
    key of their own, and its quarantine is the model's."""
    auditor = UsageAuditor(None, policy=POLICY, contexts=lambda m: [4096, 4096, 4096])
    opted = Extensions(allow_prompt_keeping=True)
    flagged = []
    for _ in range(40):
        for node, completion in (("a", 30), ("b", 30), ("keeper", 116)):
            if _answer(auditor, node, completion, ext=opted):
                flagged.append(node)
    assert set(flagged) == {"keeper"} and auditor.verdicts[0].model == MODEL  # its quarantine
    assert {row["model"] for row in auditor.view()["nodes"]} == {f"{MODEL} (keeping allowed)"}


def test_requests_too_large_for_a_peers_context_are_not_counted() -> None:
    auditor = _frame(max_tokens=8000)  # over a's and b's 4096: only the target takes it
    assert not auditor.verdicts
    assert auditor.audit.verdict("target", MODEL) is None


def test_the_same_traffic_routed_to_any_node_is_counted() -> None:
    """The guard: the liar's answers that any node could have taken still flag it."""
    auditor = _frame(max_tokens=2000)  # fits every node's context
    assert auditor.verdicts and auditor.verdicts[0].node_id == "target"


def test_a_liar_beside_a_colluding_tiny_context_is_still_judged_among_its_equals() -> None:
    """A liar of a large context and a colluding id declaring 64 tokens: most requests do
    not fit the colluder, but the liar is compared with the honest nodes that took them."""
    contexts = {"liar": 32_768, "a": 32_768, "b": 32_768, "colluder": 64}
    auditor = UsageAuditor(None, policy=POLICY, contexts=lambda m: contexts.values())
    flagged = []
    for _ in range(40):
        for node, completion in (("a", 30), ("b", 30), ("liar", 116)):
            if _answer(auditor, node, completion, max_tokens=1000):
                flagged.append(node)
    assert set(flagged) == {"liar"} and auditor.verdicts[0].model == MODEL  # its quarantine
    assert {row["model"] for row in auditor.view()["nodes"]} == {f"{MODEL} (context 32768)"}


def test_declared_contexts_are_the_online_nodes_of_the_model() -> None:
    from LLM_Mesh.core.schemas import NodeRegistration
    from LLM_Mesh.registry.node_table import NodeTable
    from LLM_Mesh.registry.usage_audit import declared_contexts
    from tests.registry.helpers import ManualClock

    table = NodeTable(30.0, ManualClock())
    for node, ctx in (("a", 4096), ("b", None), ("c", 32_768)):
        model = {"id": MODEL} if ctx is None else {"id": MODEL, "context_length": ctx}
        table.register(NodeRegistration.model_validate(
            {"node_id": node, "url": f"http://{node}", "models": [model, {"id": "other"}]}
        ))  # fmt: skip
    assert sorted(declared_contexts(table)(MODEL)) == [0, 4096, 32_768]
    assert list(declared_contexts(table)("nope")) == []
