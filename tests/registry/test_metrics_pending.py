"""registry/metrics.py: in one process a request's end whose children all exist waits to be
counted until the registry is read (or PENDING wait); every read shows what counting each
end at once showed, ``_created`` included."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from prometheus_client import generate_latest

from LLM_Mesh.registry.metrics import PENDING, GatewayMetrics


def _gateway_lines(m: GatewayMetrics) -> list[str]:
    text = generate_latest(m.registry).decode()
    return [line for line in text.splitlines() if "llm_mesh_gateway_" in line]


def _ends() -> list[tuple[tuple[str, str, str, str], dict[str, object]]]:
    """Answers, errors, refusals, and label sets first seen mid-way."""
    out: list[tuple[tuple[str, str, str, str], dict[str, object]]] = []
    for i in range(400):
        node = f"n{i % 3}" if i < 200 else f"n{i % 5}"  # n3, n4 first seen at 200
        if i % 11 == 0:
            out.append((("m", "", "refused", "rate_limited"), {}))
        elif i % 7 == 0:
            out.append((("m", node, "error", "upstream_error"), {"latency_s": 0.2 + i / 1e4}))
        else:
            ttft = None if i < 5 else 0.001 * (i % 13)  # the ttft child first needed at 5
            out.append(((f"m{i % 2}", node, "ok", ""), {
                "latency_s": 0.01 + i / 1e5, "ttft_s": ttft, "prompt_tokens": i % 4,
                "completion_tokens": 1 + i % 9,
            }))  # fmt: skip
    # one label set whose first ends need fewer children than its later ones (nobody else's
    # end makes those): a child made only when an end is counted late would show it
    solo = ("solo", "n9", "ok", "")
    out[100:100] = [(solo, {"latency_s": 0.05})]
    out[150:150] = [(solo, {"latency_s": 0.05, "completion_tokens": 2})]
    out[250:250] = [
        (solo, {"latency_s": 0.05, "ttft_s": 0.01, "prompt_tokens": 1, "completion_tokens": 2})
    ]
    return out


def test_every_read_shows_what_counting_each_end_at_once_showed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_700_000_000.0]
    monkeypatch.setattr("prometheus_client.metrics.time.time", lambda: now[0])
    at_once = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
    at_once._pending = None  # counts every end when it comes
    waits = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
    ends = _ends()
    for i, (labels, kw) in enumerate(ends):
        now[0] += 1.0  # a child made later than its first end would show another _created
        at_once.request(*labels, **kw)  # type: ignore[arg-type]
        waits.request(*labels, **kw)  # type: ignore[arg-type]
        if i % 53 == 0 or i == len(ends) - 1:
            assert _gateway_lines(waits) == _gateway_lines(at_once)
    assert waits._pending is not None and not waits._pending  # the read counted them
    assert any("_created" in line for line in _gateway_lines(waits))


def test_ends_wait_only_once_their_children_exist_and_never_more_than_pending() -> None:
    m = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
    assert m._pending is not None
    kw = {"latency_s": 0.02, "ttft_s": 0.005, "prompt_tokens": 3, "completion_tokens": 4}
    m.request("m", "n1", "ok", "", **kw)  # type: ignore[arg-type]
    assert not m._pending  # its first end made its children: counted at once
    for _ in range(PENDING * 2 + 1):
        m.request("m", "n1", "ok", "", **kw)  # type: ignore[arg-type]
        assert len(m._pending) < PENDING
    assert len(m._pending) == 1
    m.request("m", "", "refused", "rate_limited")  # a refusal moves no duration: at once
    assert not m._pending  # ... after the ends before it
    total = m.registry.get_sample_value(
        "llm_mesh_gateway_requests_total", {"model": "m", "node": "n1", "outcome": "ok", "code": ""}
    )
    assert total == PENDING * 2 + 2
