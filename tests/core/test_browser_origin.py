"""Whether a loopback request is a web page's (core/browser_origin.py): CSRF and DNS
rebinding against a node's loopback-only endpoints."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.browser_origin import is_loopback_host, web_page_refusal


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:8801", True), ("127.0.0.1", True), ("127.9.9.9:1", True), ("localhost", True),
     ("LOCALHOST:8801", True), ("localhost.", True), ("node.localhost:8801", True),
     ("[::1]:8801", True), ("[::1]", True), ("[::ffff:127.0.0.1]:80", True),
     ("evil.example:8801", False), ("localhost.evil.example", False), ("10.0.0.1:8801", False),
     ("[::2]:8801", False), ("[::1", False), ("", False), (None, False),
     ("127.0.0.1:²", False), ("mybox:8801", False)],
)  # fmt: skip
def test_loopback_host_header(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "headers",
    [{"host": "127.0.0.1:8801"},  # the CLI, curl, Prometheus: no browser headers
     {"host": "node.test"},  # any Host from a program that is not a browser
     {"host": "127.0.0.1:8801", "sec-fetch-site": "none"},  # the operator types the URL
     {"host": "localhost:8801", "origin": "http://localhost:3000", "sec-fetch-site": "same-site"},
     {"host": "[::1]:8801", "origin": "http://[::1]:8801", "sec-fetch-site": "same-origin"},
     {"host": "127.0.0.1:8801", "origin": "http://127.0.0.1:8801"}],
)  # fmt: skip
def test_programs_and_the_operators_own_pages_pass(headers: dict[str, str]) -> None:
    assert web_page_refusal(headers) is None


@pytest.mark.parametrize(
    "headers",
    [  # CSRF: another site's page posts to the node (a form post: no preflight)
     {"host": "127.0.0.1:8801", "origin": "https://evil.example", "sec-fetch-site": "cross-site"},
     {"host": "127.0.0.1:8801", "origin": "https://evil.example"},  # an older browser
     {"host": "127.0.0.1:8801", "origin": "null"},  # a sandboxed iframe, a data: URL
     {"host": "127.0.0.1:8801", "origin": "http://localhost.evil.example"},
     {"host": "127.0.0.1:8801", "origin": "file://"},
     # DNS rebinding: the page's own name now resolves to 127.0.0.1, same-origin
     {"host": "rebind.evil.example:8801", "sec-fetch-site": "same-origin"},
     {"host": "rebind.evil.example:8801", "origin": "http://rebind.evil.example:8801"},
     {"origin": "http://127.0.0.1:8801", "sec-fetch-site": "same-origin"}],  # no Host
)  # fmt: skip
def test_another_sites_page_is_refused(headers: dict[str, str]) -> None:
    assert web_page_refusal(headers) is not None
