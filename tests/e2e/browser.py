"""A real browser for the dashboard's tests: Playwright driving the system's Chromium.

Playwright cannot download its own browser here, so it drives Debian's ``chromium``
(``/usr/bin/chromium``; ``LLM_MESH_CHROMIUM`` names another). Where no browser (or no
``playwright``) can be had the tests skip with a message saying what to install; with
``LLM_MESH_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs chromium) they fail
instead.

:class:`PageWatch` records everything that went wrong on a page — console errors,
uncaught exceptions, failed requests and answers of 400 or more — and
:meth:`PageWatch.check` fails the test on any of them, except what the test says it
expects (a 401 for a wrong operator token, say).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "no browser for the dashboard's tests: install Debian's chromium (apt-get install chromium) "
    "and the test extra (pip install -e '.[test]': playwright), or set LLM_MESH_CHROMIUM"
)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LLM_MESH_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium", shutil.which("chromium-browser")):  # fmt: skip
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def no_browser(reason: str) -> None:
    """Skip (or, with ``LLM_MESH_REQUIRE_BROWSER=1``, fail) for want of a browser."""
    if os.environ.get("LLM_MESH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (LLM_MESH_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), or a skip."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser(INSTALL_HINT + " [playwright is not installed]")
        raise  # unreachable: no_browser raises
    path = chromium_path()
    if path is None:
        no_browser(INSTALL_HINT + " [no chromium found]")
    pw = sync_playwright().start()
    try:
        try:
            browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except PlaywrightError as exc:
            no_browser(f"{INSTALL_HINT} [chromium at {path} did not start: {exc}]")
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@dataclass
class PageWatch:
    """What went wrong on one page (see the module docstring)."""

    problems: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return page

    def expect(self, pattern: str) -> None:
        """A problem matching ``pattern`` (a regular expression) is what the test wants."""
        self.expected.append(re.compile(pattern))

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning") and "[Violation]" not in msg.text:
            self.problems.append(f"console {msg.type}: {msg.text} at {msg.location}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # a poll still in flight when the test navigates away is cancelled by the browser
        if "ERR_ABORTED" in failure:
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def check(self) -> None:
        unexpected = [p for p in self.problems if not any(e.search(p) for e in self.expected)]
        self.problems.clear()
        assert not unexpected, "\n".join(unexpected)
