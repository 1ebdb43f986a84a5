"""A quarantine's reason in short, for every reason kind the gateway writes."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.canary import Verdict
from LLM_Mesh.core.canary_departures import DepartureTally
from LLM_Mesh.core.quarantine_reason import KINDS, reason_kind, reason_label
from LLM_Mesh.core.usage_audit import AuditVerdict


def test_every_reason_the_gateway_writes_has_its_kind() -> None:
    audit = AuditVerdict("n1", "m", "completion", 1.0, 0.3, 3, 240).describe()
    assert reason_kind(audit) == "usage_audit completion"
    assert reason_kind(f"canary: {Verdict(False, 'sampled_token', 4).describe()}") == (
        "canary sampled_token"
    )
    assert reason_kind(f"canary: {Verdict(False, 'token', 2, 0.5).describe()}") == "canary token"
    departures = DepartureTally(probes=40, departures=30, score=12.5, at_first=5).describe()
    assert reason_kind(f"canary: {departures}") == "canary sampled_departures"
    assert reason_kind("canary: usage_completion: 90 completion tokens stated, at most 9") == (
        "canary usage_completion"
    )


@pytest.mark.parametrize("odd", [None, "", 3, "no colon here", "Canary: X", "a: " + "b" * 40])
def test_anything_else_is_other(odd: object) -> None:
    assert reason_kind(odd) == "other"


def test_a_label_is_one_of_the_kinds() -> None:
    assert reason_label("canary: sampled_departures: x") == "canary sampled_departures"
    assert reason_label("canary: made_up_word at 3") == "other"
    assert {reason_label(f"{k.replace(' ', ': ', 1)} x") for k in KINDS} == set(KINDS)
