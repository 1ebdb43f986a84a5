"""The dashboard in a real browser (Chromium via Playwright) against a running mesh.

Real processes on loopback: ``llm-mesh``'s registry + gateway and one node on the
``sim`` engine (every page labels it simulated), plus ledger entries granted with the
CLI and checkpoints signed every second; one test uses the real gemma-3-270m model.
Every test fails on any console error, uncaught exception, failed request or answer of
400 or more on its pages (``tests/e2e/browser.py``), unless it expects one.

The screenshot in the README (``docs/dashboard.png``) is made here: run with
``LLM_MESH_UPDATE_SCREENSHOT=1`` to write it (otherwise it goes to the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.browser import PageWatch
from tests.e2e.conftest import needs_model, start_mesh
from tests.waiting import SOON_S, scaled

pytestmark = pytest.mark.e2e

WIDTHS = (1280, 390)
PAGES = ("/", "/nodes", "/models", "/ledger", "/playground", "/operator")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 30_000


def _grant(home: Path, account: str, amount: int) -> None:
    env = {**os.environ, "LLM_MESH_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "registry", "grant", account, str(amount)],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[LocalMesh]:
    """A sim node streaming 25 tokens a second, and three ledger entries, signed."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LLM_MESH_LEDGER_CHECKPOINT_S", "1")  # the registry's env (LocalMesh copies it)
    home = tmp_path_factory.mktemp("dashboard-mesh")
    m = start_mesh(
        home, engine="sim", node_args=["--sim-tokens-per-s", "25", "--sim-ttft-s", "0.05"]
    )
    try:
        for i in range(3):
            _grant(home, "pool", 1_000_000 * (i + 1))
        yield m
    finally:
        m.stop()
        mp.undo()


def _page(browser: Any, watch: PageWatch, width: int = 1280) -> Any:
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = watch.attach(ctx.new_page())
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _base(mesh: LocalMesh) -> str:
    return mesh.registry_url + "/dashboard"


def _node_id(mesh: LocalMesh) -> str:
    node_id = mesh._node_id
    assert node_id
    return node_id


def _int(page: Any, selector: str) -> int:
    return int(page.locator(selector).first.inner_text().split()[0])


def _signed(mesh: LocalMesh, size: int) -> None:
    """Wait until a checkpoint of at least ``size`` entries is signed."""
    import httpx

    deadline = time.monotonic() + scaled(SOON_S)
    while time.monotonic() < deadline:
        cps = httpx.get(mesh.registry_url + "/v1/ledger/checkpoints?limit=10000").json()["data"]
        if cps and cps[-1]["tree_size"] >= size:
            return
        time.sleep(0.3)
    raise AssertionError(f"no checkpoint of {size} entries was signed")


# -- every page ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_loads_without_an_error_at_this_width(
    mesh: LocalMesh, browser: Any, watch: PageWatch, width: int
) -> None:
    page = _page(browser, watch, width)
    for path in PAGES:
        page.goto(_base(mesh) + path)
        assert page.locator("h1").first.is_visible()
        # nothing wider than the screen: tables scroll or stack inside the page
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, path
        assert page.locator('nav a[aria-current="page"]').count() == 1
    page.goto(_base(mesh) + "/")
    # the charts drew the hour's series (720 five-second buckets)
    page.wait_for_selector('[data-chart="rps"][data-points="720"]')
    assert page.locator("canvas").count() == 4
    page.select_option("#chart-window", "120")  # the last two minutes: 24 or 25 buckets
    page.wait_for_function(
        "() => Number(document.querySelector('[data-chart=\"rps\"]').dataset.points) <= 25"
    )
    assert "simulated" in page.locator("main").inner_text()
    page.goto(_base(mesh) + "/nodes")
    page.locator(f'tr[data-node="{_node_id(mesh)}"] a').first.click()
    page.wait_for_selector('[data-chart="node-requests"][data-points="60"]')
    assert _node_id(mesh) in page.locator("h1").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    page.context.close()


# -- the playground, and the counters that move -------------------------------------------


def test_a_request_from_the_playground_streams_and_the_counters_move(
    mesh: LocalMesh, browser: Any, watch: PageWatch, tmp_path: Path
) -> None:
    node_id = _node_id(mesh)
    overview = _page(browser, watch)
    overview.goto(_base(mesh) + "/")
    before = _int(overview, '[data-figure="requests-hour"]')
    nodes = watch.attach(overview.context.new_page())
    nodes.goto(_base(mesh) + "/nodes")
    row = f'tr[data-node="{node_id}"]'
    served = _int(nodes, f'{row} [data-cell="served-1h"]')

    play = watch.attach(overview.context.new_page())
    play.goto(_base(mesh) + "/playground")
    play.fill("#play-prompt", "def fibonacci(n):")
    play.fill("#play-max", "50")
    play.click("#play-send")
    # it streams: part of the answer is on the page while more is coming
    play.wait_for_function(
        "() => { const o = document.getElementById('play-output');"
        " return o.dataset.state === 'streaming' && Number(o.dataset.chunks || 0) >= 3; }"
    )
    partial = play.locator("#play-output").inner_text()
    play.wait_for_selector('#play-output[data-state="done"]')
    answer = play.locator("#play-output").inner_text()
    assert len(answer) > len(partial) > 0
    assert play.locator('#play-facts a[data-field="node"]').inner_text() == node_id
    facts = play.locator("#play-facts").inner_text()
    assert "NetworkToken" in facts and "simulated engine" in facts
    # the answer's signed receipt is shown as it came (node part signed, gateway countersigned)
    assert '"receipt_hash"' in facts and '"parts"' in facts and '"signature"' in facts, facts
    assert "not built yet" not in facts

    overview.wait_for_function(
        f"() => Number(document.querySelector('[data-figure=\"requests-hour\"]')"
        f".textContent) > {before}"
    )
    nodes.wait_for_function(
        f"() => Number(document.querySelector('{row} [data-cell=\"served-1h\"]')"
        f".textContent) > {served}"
    )
    shot = tmp_path / "dashboard.png"
    if os.environ.get("LLM_MESH_UPDATE_SCREENSHOT") == "1":
        _traffic(mesh, 24)  # the README's picture: a little more on the charts
    overview.select_option("#chart-window", "600")
    overview.wait_for_timeout(5500)  # one more poll: the charts show the request
    overview.screenshot(path=str(shot), full_page=True)
    if os.environ.get("LLM_MESH_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
    overview.context.close()


def _traffic(mesh: LocalMesh, n: int) -> None:
    import httpx

    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 12}  # fmt: skip
    with httpx.Client(base_url=mesh.registry_url, timeout=30) as c:
        for i in range(n):
            c.post("/v1/chat/completions", json={**body, "stream": i % 2 == 0}).raise_for_status()
            time.sleep(0.4)


# -- the ledger, checked in the browser -----------------------------------------------------


def _verify(page: Any, seq: int) -> dict[str, str]:
    page.locator(f'button[data-verify="{seq}"]').click()
    page.wait_for_function(
        f"() => {{ const r = document.getElementById('verify-result');"
        f" return r.dataset.seq === '{seq}' && ['ok', 'bad', 'incomplete'].includes(r.dataset.verdict)"
        f" || r.dataset.verdict === 'error'; }}"
    )
    result = page.locator("#verify-result")
    steps = {
        li.get_attribute(
            "data-step"
        ): f"{li.get_attribute('class')}@{li.get_attribute('data-where')}"
        for li in result.locator("li").all()
    }
    steps["verdict"] = result.get_attribute("data-verdict") or ""
    return steps


def test_an_inclusion_proof_is_checked_in_the_browser(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    _signed(mesh, 3)
    page = _page(browser, watch)
    page.goto(_base(mesh) + "/ledger")
    for seq in (0, 1, 2):
        steps = _verify(page, seq)
        assert steps == {"leaf": "ok@browser", "signature": "ok@browser",
                         "inclusion": "ok@browser", "verdict": "ok"}, steps  # fmt: skip
    # by number, with the keyboard only
    page.locator("#verify-seq").fill("1")
    page.locator("#verify-seq").press("Enter")
    page.wait_for_function(
        "() => document.getElementById('verify-result').dataset.verdict === 'ok'"
    )
    page.context.close()


def _tamper(route: Any, change: Any) -> None:
    response = route.fetch()
    body = response.json()
    change(body)
    route.fulfill(response=response, json=body)


@pytest.mark.parametrize("what", ["amount", "proof", "signature", "root"])
def test_a_tampered_answer_is_caught_in_the_browser(
    mesh: LocalMesh, browser: Any, watch: PageWatch, what: str
) -> None:
    """The check is real: an entry, proof or checkpoint altered on the way fails it."""
    _signed(mesh, 3)
    page = _page(browser, watch)

    def amount(body: dict[str, Any]) -> None:
        body["data"][0]["amount"] += 1

    def proof(body: dict[str, Any]) -> None:
        body["proof"] = [*body["proof"], "00" * 32]

    def note(body: dict[str, Any], line: int) -> None:
        cp = body["data"][0]
        lines = cp["note"].split("\n")
        if line == 2:  # another root in the signed body
            lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
        else:  # another signature
            sig = lines[-2]
            lines[-2] = sig[:-6] + ("AAAA" if sig[-6:-2] != "AAAA" else "BBBB") + sig[-2:]
        cp["note"] = "\n".join(lines)

    routes = {
        "amount": ("**/v1/ledger?after=*", amount),
        "proof": ("**/v1/ledger/proof/inclusion*", proof),
        "signature": ("**/v1/ledger/checkpoints*", lambda b: note(b, -2)),
        "root": ("**/v1/ledger/checkpoints*", lambda b: note(b, 2)),
    }
    pattern, change = routes[what]
    page.route(pattern, lambda route: _tamper(route, change))
    page.goto(_base(mesh) + "/ledger")
    steps = _verify(page, 0)
    assert steps["verdict"] == "bad", steps
    failed = {k for k, v in steps.items() if v.startswith("bad@")}
    expected = {"amount": {"leaf", "inclusion"}, "proof": {"inclusion"},
                "signature": {"signature"}, "root": {"signature", "inclusion"}}[what]  # fmt: skip
    assert failed == expected, steps
    page.context.close()


def test_without_ed25519_in_webcrypto_the_signature_is_checked_server_side(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    _signed(mesh, 3)
    page = _page(browser, watch)
    page.add_init_script(
        "(() => { const orig = crypto.subtle.importKey.bind(crypto.subtle);"
        " crypto.subtle.importKey = (fmt, key, alg, ...rest) =>"
        " (alg && alg.name === 'Ed25519') ? Promise.reject(new DOMException('no', 'NotSupportedError'))"
        " : orig(fmt, key, alg, ...rest); })();"
    )
    page.goto(_base(mesh) + "/ledger")
    steps = _verify(page, 2)
    assert steps == {"leaf": "ok@browser", "signature": "ok@server",
                     "inclusion": "ok@browser", "verdict": "ok"}, steps  # fmt: skip
    assert "no Ed25519" in page.locator("#verify-result").inner_text()
    page.context.close()


# -- keyboard -------------------------------------------------------------------------------


def _tab_order(page: Any, presses: int) -> list[str]:
    order = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        order.append(page.evaluate(
            "() => { const a = document.activeElement;"
            " return a.id || a.getAttribute('href') || a.getAttribute('data-verify') || a.tagName; }"
        ))  # fmt: skip
    return order


def _in_order(seq: list[str], wanted: list[str]) -> bool:
    at = 0
    for item in seq:
        if at < len(wanted) and item == wanted[at]:
            at += 1
    return at == len(wanted)


def test_keyboard_reaches_every_control_in_order(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    page = _page(browser, watch)
    base = "/dashboard"
    page.goto(_base(mesh) + "/playground")
    order = _tab_order(page, 16)
    nav = [f"{base}/", f"{base}/nodes", f"{base}/models", f"{base}/ledger",
           f"{base}/playground", f"{base}/operator"]  # fmt: skip
    assert order[0] == "#main"  # the skip link first
    assert _in_order(order, [*nav, "play-model", "play-task", "play-prompt", "play-max", "play-key", "play-send"]), order  # fmt: skip
    # the skip link moves the focus to the content
    page.goto(_base(mesh) + "/playground")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # and the playground works from the keyboard alone
    page.locator("#play-prompt").focus()
    page.keyboard.press("Tab")  # max tokens
    page.keyboard.press("Tab")  # API key
    page.keyboard.press("Tab")  # send
    assert page.evaluate("document.activeElement.id") == "play-send"
    page.keyboard.press("Enter")
    page.wait_for_selector('#play-output[data-state="done"]')

    page.goto(_base(mesh) + "/ledger")
    order = _tab_order(page, 14)
    assert _in_order(order, [*nav, "verify-seq"]), order
    page.goto(_base(mesh) + "/operator")
    assert _in_order(_tab_order(page, 12), [*nav, "op-token", "op-forget"])
    page.context.close()


# -- the operator's view --------------------------------------------------------------------


def test_the_operator_view_with_a_token_kept_in_the_tab_only(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    token = mesh._operator_token
    assert token
    page = _page(browser, watch)
    page.goto(_base(mesh) + "/operator")
    page.fill("#op-token", token)
    page.press("#op-token", "Enter")
    page.wait_for_selector(f'#op-result tr[data-node="{_node_id(mesh)}"]')
    assert page.locator("#op-token").input_value() == ""  # not left in the form
    assert page.evaluate("sessionStorage.getItem('llm-mesh-operator-token')") == token
    assert page.evaluate("localStorage.length") == 0
    result = page.locator("#op-result").inner_text()
    assert "not built yet" not in result
    # earnings: the requests this mesh served are settled (real settlement), so a table per
    # day and per model, or, when none is settled yet, said so (no zeros); canary verdicts:
    # nothing yet (no verifier), said so
    assert ("Per UTC day" in result and "Per model" in result) or (
        "Nothing settled or rewarded" in result
    ), result
    assert "No canary probe has checked" in result
    assert page.locator('#op-result [data-figure="op-balance"]').count() == 1
    trust = f'#op-result tr[data-node="{_node_id(mesh)}"] [data-cell="trust"]'
    assert page.locator(trust).count() == 1
    page.reload()  # the same tab keeps it
    page.wait_for_selector(f'#op-result tr[data-node="{_node_id(mesh)}"]')
    page.click("#op-forget")
    assert page.locator("#op-result tr").count() == 0
    assert page.evaluate("sessionStorage.getItem('llm-mesh-operator-token')") is None
    # a wrong token: refused (the browser logs the 401 it was expected to get)
    watch.expect(r"HTTP 401: GET .*/dashboard/fragment/operator")
    watch.expect(
        r"console error: Failed to load resource: the server responded with a status of 401"
    )
    page.fill("#op-token", "not-a-token")
    page.press("#op-token", "Enter")
    page.wait_for_function(
        "() => document.getElementById('op-status').textContent.includes('not a live operator token')"
    )
    assert page.evaluate("sessionStorage.getItem('llm-mesh-operator-token')") is None
    page.context.close()


def _settled(mesh: LocalMesh, token: str) -> None:
    """Wait until a request this mesh served is settled to the operator's account."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + scaled(SOON_S)
    while time.monotonic() < deadline:
        r = httpx.get(mesh.registry_url + "/v1/earnings", headers=headers, timeout=10)
        if r.status_code == 200 and r.json()["by_model"]:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"nothing settled to the operator within {scaled(SOON_S):g} s: {r.text[:300]}"
    )


def test_the_operator_view_labels_the_sim_node_and_its_earnings_simulated(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    """The operator's node row, its earnings per model and their total say "simulated" (the
    node runs the sim engine), as do the playground's task picks and the node's page (found
    2026-12-05: the earnings per model and the task picks read like a real model's)."""
    token = mesh._operator_token
    assert token
    _traffic(mesh, 2)
    _settled(mesh, token)
    node_id = _node_id(mesh)
    page = _page(browser, watch)
    page.goto(_base(mesh) + "/operator")
    page.fill("#op-token", token)
    page.press("#op-token", "Enter")
    earned = '#op-result [data-table="earnings-model"] tr[data-model="gemma-3-270m"] th'
    page.wait_for_selector(earned)
    assert (
        page.locator(f'#op-result tr[data-node="{node_id}"] th .tag.sim').inner_text()
        == "simulated"
    )
    assert page.locator(f"{earned} .tag.sim").inner_text() == "simulated"
    totals = page.locator('#op-result [data-earnings="totals"]').inner_text()
    assert "of it earned by nodes simulated now" in totals, totals  # words43
    page.goto(_base(mesh) + "/playground")
    python = page.locator('#play-task option[value="python"]').inner_text()
    assert python == "python → gemma-3-270m (simulated)", python
    page.goto(_base(mesh) + f"/nodes/{node_id}")
    assert page.locator("h1 .tag.sim").inner_text() == "simulated"
    page.context.close()


SECRET = "lmo-do-not-put-me-in-a-url"
PROMPT = "a-prompt-only-the-gateway-may-read"


@pytest.mark.parametrize("script", ["off", "not_loaded_yet"])
@pytest.mark.parametrize(
    ("path", "fields", "typed_in"),
    [
        ("/operator", {"#op-token": SECRET}, "#op-token"),
        ("/playground", {"#play-prompt": PROMPT, "#play-key": SECRET}, "#play-key"),
    ],
)
def test_a_form_sent_before_its_script_runs_puts_no_secret_in_a_url(
    mesh: LocalMesh, browser: Any, watch: PageWatch,
    path: str, fields: dict[str, str], typed_in: str, script: str,
) -> None:  # fmt: skip
    """Enter pressed in the operator's token or the playground's key field while the page's
    script is off or still loading (a slow link: it is ``defer``): the browser sends the
    form itself, as a GET to the page. Found 2026-12-05: the fields had names, so the
    token, the API key and the prompt went into the address bar, the tab's history and any
    proxy's log (``/dashboard/operator?token=lmo-...``); now they have none."""
    ctx = browser.new_context(java_script_enabled=script != "off")
    page = watch.attach(ctx.new_page())
    page.set_default_timeout(TIMEOUT_MS)
    held: list[Any] = []

    def hold(route: Any) -> None:  # never answered: the script is still loading
        held.append(route)

    page.route("**/static/*.js", hold)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.url} {r.post_data or ''}"))
    page.goto(_base(mesh) + path, wait_until="commit")
    for selector, value in fields.items():
        page.fill(selector, value)
    with page.expect_navigation(wait_until="commit"):
        page.press(typed_in, "Enter")
    assert urlsplit(page.url).path == urlsplit(_base(mesh) + path).path
    for text in (SECRET, PROMPT, "lmo-do-not"):
        assert text not in page.url
        assert not [s for s in sent if text in s], sent
    page.unroute("**/static/*.js", hold)
    ctx.close()


def test_the_api_docs_link_never_shares_the_operators_tab(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    """The footer's API link opens ``/docs`` (Swagger UI, run on the gateway's origin) in a
    tab of its own, with no opener: no script of that page can read the operator's token
    from the dashboard tab's session storage (found 2026-12-03: it opened in the same tab,
    where ``sessionStorage`` held the token for any script on ``/docs`` to read)."""
    token = mesh._operator_token
    assert token
    page = _page(browser, watch)
    page.goto(_base(mesh) + "/operator")
    page.fill("#op-token", token)
    page.press("#op-token", "Enter")
    page.wait_for_selector(f'#op-result tr[data-node="{_node_id(mesh)}"]')
    page.click('footer a[href$="/docs"]')
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    docs = None
    while docs is None and time.monotonic() < deadline:
        docs = next((p for p in page.context.pages if p.url.endswith("/docs")), None)
        page.wait_for_timeout(100)
    assert docs is not None, [p.url for p in page.context.pages]
    docs.wait_for_load_state("domcontentloaded")
    assert docs.evaluate("sessionStorage.getItem('llm-mesh-operator-token')") is None
    assert docs.evaluate("window.opener === null")
    assert docs is not page  # the dashboard's tab stays, its token with it
    assert page.evaluate("sessionStorage.getItem('llm-mesh-operator-token')") == token
    page.context.close()


def test_the_api_docs_render_with_no_host_but_the_gateway(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    """``/docs`` in Chromium with every request to another host refused: Swagger UI (the
    registry's own files) lists the API's operations, under the page's policy (a refused
    script or style is a console error, which fails the test) and with no request to
    anything but the gateway. Found 2026-12-03: the page's script and style came from
    cdn.jsdelivr.net (and its icon from fastapi.tiangolo.com): offline, a blank page."""
    gateway = urlsplit(mesh.registry_url).netloc
    elsewhere: list[str] = []

    def only_the_gateway(route: Any) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https") and url.netloc == gateway:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = _page(browser, watch)
    page.context.route("**/*", only_the_gateway)
    page.goto(mesh.registry_url + "/docs")
    for path in ("/v1/chat/completions", "/v1/models", "/mesh/nodes"):
        page.wait_for_selector(f'.opblock-summary-path[data-path="{path}"]')
    assert page.locator(".opblock").count() >= 10
    assert "LLM Mesh registry" in page.locator(".info .title").inner_text()
    assert elsewhere == []
    page.context.close()


# -- the real model -------------------------------------------------------------------------


@needs_model
@pytest.mark.model
def test_the_playground_with_the_real_model(
    real_mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    page = _page(browser, watch)
    page.goto(real_mesh.registry_url + "/dashboard/playground")
    page.select_option("#play-task", "python")
    page.fill("#play-max", "24")
    page.click("#play-send")
    page.wait_for_selector('#play-output[data-state="done"]', timeout=120_000)
    assert page.locator("#play-output").inner_text().strip()
    facts = page.locator("#play-facts").inner_text()
    assert "gemma-3-270m (llama-cpp)" in facts and "simulated engine" not in facts
    page.goto(real_mesh.registry_url + "/dashboard/")
    assert "simulated" not in page.locator("main").inner_text()
    page.context.close()
