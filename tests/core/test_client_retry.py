"""``core/client_retry.py``: the one rule for ``x-should-retry`` on an error answer."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.client_retry import HEADER, SOON_S, retry_header, should_retry


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


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_failure_is_left_to_the_clients_own_rule(status: int) -> None:
    assert should_retry(status) is None
    assert retry_header(status) == {}


def test_a_request_timeout_is_retried() -> None:
    assert retry_header(408) == {HEADER: "true"}
