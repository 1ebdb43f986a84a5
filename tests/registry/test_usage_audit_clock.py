"""The gateway's usage audit puts each answer in the time window of its injected clock
(``registry/usage_audit.py`` → ``core/usage_audit.py``): a node is judged against its peers
over the same windows, so a liar answering only when no peer does has no evidence."""

from __future__ import annotations

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.usage_audit import AuditPolicy
from LLM_Mesh.registry.job import Job, Tally
from LLM_Mesh.registry.usage_audit import UsageAuditor

MODEL = "mistral-7b"
POLICY = AuditPolicy(min_requests=20, check_every=1, bucket_s=300.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _answer(auditor: UsageAuditor, node: str, completion: int) -> bool:
    """One routed answer of 100 bytes (cap 116) and a 200-byte prompt; a verdict?"""
    spec = get_spec(MODEL)
    assert spec is not None
    job = Job(path="/v1/completions", model=MODEL, body={}, raw=b"{}", stream=False,
              prompt_text="x" * 200, max_tokens=200, price=spec.price, estimate=1,
              catalog_context=spec.context_length, request_id="r", started=0.0)  # fmt: skip
    tally = Tally()
    tally.node_id, tally.completion_cap = node, 116
    tally.completion_tokens, tally.prompt_tokens = completion, 50
    return auditor.answered(job, tally) is not None


def test_a_liar_answering_after_its_peers_left_is_not_judged_beside_them_it_is() -> None:
    clock = Clock()
    auditor = UsageAuditor(None, policy=POLICY, clock=clock)
    for _ in range(30):  # the peers, honest, in the first window
        assert not _answer(auditor, "a", 30) and not _answer(auditor, "b", 30)
    clock.now = 3600.0  # an hour later the liar alone, a token a byte
    assert not any(_answer(auditor, "liar", 116) for _ in range(60))
    assert auditor.audit.verdict("liar", MODEL) is None and not auditor.verdicts
    # the peers come back: in the windows shared, the liar is judged
    flagged = False
    for _ in range(30):
        _answer(auditor, "a", 30)
        _answer(auditor, "b", 30)
        flagged = flagged or _answer(auditor, "liar", 116)
    assert flagged and auditor.verdicts[0].node_id == "liar"
    assert auditor.view()["policy"]["bucket_s"] == 300.0
