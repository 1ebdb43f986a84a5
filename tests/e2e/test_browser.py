"""The browser helper: skip without a browser, fail instead under LLM_MESH_REQUIRE_BROWSER=1,
and the page watch that fails a test on console errors and failed requests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.e2e import browser


def _no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "chromium_path", lambda: None)


def test_no_browser_skips_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_chromium(monkeypatch)
    monkeypatch.delenv("LLM_MESH_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"), browser.chromium():
        pass


def test_no_browser_fails_where_one_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_chromium(monkeypatch)
    monkeypatch.setenv("LLM_MESH_REQUIRE_BROWSER", "1")
    with (
        pytest.raises(pytest.fail.Exception, match="LLM_MESH_REQUIRE_BROWSER=1"),
        browser.chromium(),
    ):
        pass


def test_a_chromium_named_by_the_environment_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MESH_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda _name: None)
    found = browser.chromium_path()
    assert found != "/nonexistent/chromium"


def test_the_page_watch_fails_on_problems_but_not_on_expected_ones() -> None:
    w = browser.PageWatch()
    w._console(SimpleNamespace(type="error", text="boom", location={}))
    w._console(SimpleNamespace(type="log", text="fine", location={}))
    w._failed(SimpleNamespace(failure="net::ERR_ABORTED", method="GET", url="u"))  # navigation
    w._response(SimpleNamespace(status=200, request=SimpleNamespace(method="GET"), url="u"))
    w._response(SimpleNamespace(status=401, request=SimpleNamespace(method="GET"), url="/op"))
    with pytest.raises(AssertionError, match="boom"):
        w.check()
    w._response(SimpleNamespace(status=401, request=SimpleNamespace(method="GET"), url="/op"))
    w.expect(r"HTTP 401: GET /op")
    w.check()
    w._failed(SimpleNamespace(failure="net::ERR_CONNECTION_REFUSED", method="GET", url="x"))
    with pytest.raises(AssertionError, match="request failed"):
        w.check()
