"""A node quarantined, by any of the gateway's ways: what the admin's alerting and log see.

One counter for every quarantine, labelled by its reason's kind
(``llm_mesh_gateway_quarantines_total{reason}``; found 2026-12-05: only the usage audit's
flags were counted, a failed probe or the departures test moved no metric), and one log
line naming the node, the model and the whole reason, not headed ``canary:`` for the usage
audit's (found 2026-12-05: "canary: node ... quarantined" for every reason)."""

from __future__ import annotations

import logging

import pytest

from LLM_Mesh.core.usage_audit import AuditVerdict
from LLM_Mesh.registry.quality import Quality
from tests.registry.canary_mesh import MODEL, mesh, register
from tests.registry.helpers import Harness
from tests.registry.test_metrics import scrape

__all__ = ["mesh"]  # the fixture

DEPARTURES = "canary: sampled_departures: log-likelihood ratio 12.5 ≥ 9.2 over 40 probes"


async def test_every_quarantine_is_counted_by_kind_and_logged(
    mesh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    q = mesh.runtime.quality
    assert isinstance(q, Quality)
    for node in ("n1", "n2", "n3"):
        await register(mesh, node)
    audit = AuditVerdict("n1", MODEL, "completion", 1.0, 0.31, 3, 240).describe()
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.registry.quality"):
        await q.record("n1", MODEL, ok=False, reason=audit)
        await q.record("n2", MODEL, ok=False, reason=DEPARTURES)
        await q.record("n2", MODEL, ok=False, reason=DEPARTURES)  # already: not again
        await q.record("n3", MODEL, ok=True, reason=None)
    s = await scrape(mesh)
    name = "llm_mesh_gateway_quarantines_total"
    assert s.value(name, reason="usage_audit completion") == 1
    assert s.value(name, reason="canary sampled_departures") == 1
    assert s.value(name, reason="canary token") == 0  # every kind present from the start
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == f"node n1 quarantined for {MODEL} (usage_audit completion): {audit}"
    assert lines[1].startswith(f"node n2 quarantined for {MODEL} (canary sampled_departures)")
