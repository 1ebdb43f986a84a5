"""Who may read ``/metrics`` (core/metrics_access.py): public, the metrics token, loopback."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.metrics_access import MetricsAccess, Verdict, is_loopback

FAR = "203.0.113.9"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("fe80::1%eth0", False), ("10.0.0.1", False), ("::ffff:10.0.0.1", False), (FAR, False),
     ("localhost", False), ("", False), (None, False), ("not an address", False)],
)  # fmt: skip
def test_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_loopback_only() -> None:
    access = MetricsAccess()
    assert access.decide(None, "127.0.0.1") is Verdict.ALLOW
    assert access.decide(None, FAR) is Verdict.FORBIDDEN
    assert access.decide(None, None) is Verdict.FORBIDDEN
    # no token configured: a bearer from afar is no credential at all
    assert access.decide("Bearer anything", FAR) is Verdict.UNAUTHORIZED
    assert access.decide("Bearer anything", "127.0.0.1") is Verdict.ALLOW


def test_the_token_opens_it_from_anywhere() -> None:
    access = MetricsAccess(token="s3cret")
    assert access.decide("Bearer s3cret", FAR) is Verdict.ALLOW
    assert access.decide("bearer   s3cret ", FAR) is Verdict.ALLOW
    assert access.decide("Bearer s3cret-not", FAR) is Verdict.UNAUTHORIZED
    assert access.decide("Bearer s3cre", FAR) is Verdict.UNAUTHORIZED
    assert access.decide("Basic s3cret", FAR) is Verdict.FORBIDDEN  # not a bearer token
    assert access.decide("Bearer", FAR) is Verdict.FORBIDDEN
    # a wrong token is refused even on loopback: whoever sent it meant it
    assert access.decide("Bearer wrong", "127.0.0.1") is Verdict.UNAUTHORIZED
    assert "s3cret" not in repr(access)


def test_public_is_everyone() -> None:
    access = MetricsAccess(public=True, token="t")
    assert access.decide(None, FAR) is Verdict.ALLOW
    assert access.decide("Bearer wrong", FAR) is Verdict.ALLOW


def test_a_web_page_on_loopback_is_not_the_operator() -> None:
    """A browser on the node's machine reading /metrics for another site (DNS rebinding)
    is loopback but not let in; the metrics token still is."""
    access = MetricsAccess(token="t0k")
    assert access.decide(None, "127.0.0.1", "a browser request") is Verdict.FORBIDDEN
    assert access.decide("Bearer t0k", "127.0.0.1", "a browser request") is Verdict.ALLOW
