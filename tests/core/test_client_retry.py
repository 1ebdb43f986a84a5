"""``core/client_retry.py``: the one rule for ``x-should-retry`` on an error answer."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.client_retry import (
    CLIENT_DEFAULT_WAIT_S,
    CLIENT_MAX_WAIT_S,
    CLIENT_RETRIES,
    HEADER,
    SOON_S,
    client_advice,
    client_wait,
    deadline_message,
    retry_estimate,
    retry_header,
    should_retry,
)
from LLM_Mesh.core.route_types import Decision, Verdict


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 405, 409, 413, 422, 431])
def test_the_clients_own_4xx_is_not_retried(status: int) -> None:
    # 409 too (the SDK's own rule retries it): a request id that ran is never run twice
    assert should_retry(status) is False
    assert retry_header(status) == {HEADER: "false"}


@pytest.mark.parametrize("status", [429, 503])
def test_a_wait_within_soon_is_retried_and_a_longer_one_is_not(status: int) -> None:
    assert should_retry(status, 1) is True
    assert should_retry(status) is True
    assert should_retry(status, SOON_S) is True
    assert should_retry(status, SOON_S + 1) is False


def test_no_node_serving_the_model_is_never_retried() -> None:
    assert should_retry(503, 10, hopeless=True) is False
    assert retry_header(503, 10, hopeless=True) == {HEADER: "false"}


def test_a_request_that_used_its_whole_deadline_is_not_retried() -> None:
    # a 504: a retry would most likely take as long again (found 2026-12-05: 6 minutes)
    assert should_retry(504) is False
    assert should_retry(504, 1) is False
    assert retry_header(504) == {HEADER: "false"}


def test_a_failure_is_retried_only_with_the_gateways_estimate() -> None:
    assert should_retry(502) is False  # every node that would take it failed it
    assert should_retry(502, 1) is True  # a node the request did not try takes it now
    assert should_retry(502, SOON_S) is True
    assert should_retry(502, SOON_S + 1) is False
    assert retry_header(502, 1) == {HEADER: "true"}


@pytest.mark.parametrize("status", [500, 501, 505, 599])
def test_a_fault_and_any_other_5xx_are_not_retried(status: int) -> None:
    assert should_retry(status) is False
    assert retry_header(status) == {HEADER: "false"}


@pytest.mark.parametrize(
    ("status", "retry_after", "hopeless", "verdict"),
    [  # the whole rule, one row a case (module docstring)
        (400, None, False, False),
        (404, None, False, False),
        (408, None, False, True),
        (409, None, False, False),
        (429, 1, False, True),
        (429, 61, False, False),
        (500, None, False, False),
        (502, None, False, False),
        (502, 1, False, True),
        (503, None, False, True),
        (503, 10, False, True),
        (503, 10, True, False),
        (503, 3600, False, False),
        (504, None, False, False),
    ],
)
def test_the_rules_table(
    status: int, retry_after: float | None, hopeless: bool, verdict: bool
) -> None:
    assert should_retry(status, retry_after, hopeless=hopeless) is verdict


@pytest.mark.parametrize(
    ("decision", "estimate"),
    [
        (Decision(Verdict.OK, "n2"), 1),  # another node takes it now
        (Decision(Verdict.SATURATED, wait_s=2.2), 3),  # another node has room in 2.2 s
        (Decision(Verdict.NO_NODE, wait_s=0.1), 1),  # an untried node's hold ends
        (Decision(Verdict.NO_NODE), None),  # no other node: no retry soon
        (Decision(Verdict.SATURATED, wait_s=math.inf), None),
    ],
)
def test_a_502s_estimate_is_the_routers_decision_without_the_nodes_tried(
    decision: Decision, estimate: int | None
) -> None:
    assert retry_estimate(decision) == estimate


@pytest.mark.parametrize(
    ("decision", "back_s", "estimate"),
    [
        (Decision(Verdict.NO_NODE), 30.0, 30),  # a one-node model's node, rested 30 s
        (Decision(Verdict.NO_NODE), 0.2, 1),
        (Decision(Verdict.NO_NODE), None, None),  # the node left: none comes back
        (Decision(Verdict.NO_NODE), math.inf, None),
        (Decision(Verdict.SATURATED, wait_s=4.5), 30.0, 5),  # the sooner of the two
        (Decision(Verdict.NO_NODE, wait_s=40.0), 24.1, 25),
        (Decision(Verdict.OK, "n2"), 30.0, 1),
        (Decision(Verdict.NO_NODE), 90.0, 90),  # said, but past SOON_S: should_retry false
    ],
)
def test_a_502s_estimate_counts_the_tried_nodes_when_they_are_back(
    decision: Decision, back_s: float | None, estimate: int | None
) -> None:
    assert retry_estimate(decision, back_s) == estimate
    assert should_retry(502, estimate) is (estimate is not None and estimate <= SOON_S)


def test_a_504s_message_says_what_to_change() -> None:
    text = deadline_message("n1", "DeadlineExceeded", 120.0)
    assert text.startswith("node n1 did not answer within the request's deadline of 120 s")
    for words in ("request_timeout_s", "max_tokens", "stream: true"):
        assert words in text
    streamed = deadline_message("n1", "ReadTimeout", 120.0, stream=True)
    assert "shorter prompt" in streamed and "stream: true" not in streamed


def test_a_request_timeout_is_retried() -> None:
    assert retry_header(408) == {HEADER: "true"}


def test_client_advice_reads_the_header_and_the_wait() -> None:
    assert client_advice({}) is None  # an older gateway: the client's own rule
    assert client_advice({"x-should-retry": "maybe"}) is None
    assert client_advice({"x-should-retry": "false", "retry-after": "5"}) == (False, 0.0)
    assert client_advice({"x-should-retry": "True", "retry-after": "3"}) == (True, 3.0)
    assert client_advice({"x-should-retry": "true"}) == (True, CLIENT_DEFAULT_WAIT_S)
    date = {"x-should-retry": "true", "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}
    assert client_advice(date) == (True, CLIENT_DEFAULT_WAIT_S)
    assert client_advice({"x-should-retry": "true", "retry-after": "-4"}) == (True, 0.0)
    assert client_wait((True, 3.0), 0) == 3.0
    assert client_wait((True, 3.0), CLIENT_RETRIES) is None  # retries spent
    assert client_wait((False, 0.0), 0) is None
    assert client_wait((True, CLIENT_MAX_WAIT_S + 1), 0) is None  # past the client's bound
    assert client_wait((True, 3.0), 0, left_s=3.0) is None  # past the call's own bound
    inf = client_advice({"x-should-retry": "true", "retry-after": "inf"})
    assert inf is not None and client_wait(inf, 0) is None


def test_a_wait_of_exactly_the_clients_bound_is_waited() -> None:
    assert client_wait((True, CLIENT_MAX_WAIT_S), 0) == CLIENT_MAX_WAIT_S
    assert client_wait((True, 2.0), CLIENT_RETRIES - 1, left_s=2.5) == 2.0  # the last retry


def test_an_endless_wait_is_still_a_retry_the_gateway_advised() -> None:
    """``retry-after: inf`` (or ``nan``): the gateway said retry, after no finite wait (the
    client then raises: past its bound)."""
    for said in ("inf", "nan", "-inf"):
        advice = client_advice({"x-should-retry": "true", "retry-after": said})
        assert advice == (True, math.inf)


def test_a_504s_message_word_for_word() -> None:
    assert deadline_message("n1", "DeadlineExceeded", 120.0) == (
        "node n1 did not answer within the request's deadline of 120 s (DeadlineExceeded; "
        "the registry's request_timeout_s, LLM_MESH_REQUEST_TIMEOUT_S where it runs): a retry "
        "would most likely take as long again. "
        "Ask for fewer tokens (a smaller max_tokens) or a shorter prompt, or stream the "
        "answer (stream: true: only its first token is held to the deadline)"
    )
    assert deadline_message("n1", "ReadTimeout", 2.5, stream=True) == (
        "node n1 did not answer within the request's deadline of 2.5 s (ReadTimeout; "
        "the registry's request_timeout_s, LLM_MESH_REQUEST_TIMEOUT_S where it runs): a retry "
        "would most likely take as long again. "
        "Ask for a shorter prompt or a smaller model"
    )
