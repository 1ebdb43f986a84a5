"""The operator view in a real browser marks a node the registry revoked (its own mesh:
revoking the node of ``test_dashboard.py``'s mesh would take it away from that module's
other tests).

Found 2026-12-07 (hygiene45): ``llm-mesh earnings`` said "(revoked)" and ``GET
/v1/earnings`` ``by_node[].revoked``, but the dashboard's operator view showed the revoked
node as any other node gone OFFLINE. Real processes on loopback: ``llm-mesh``'s registry +
gateway and one node on the ``sim`` engine, revoked with ``llm-mesh registry nodes revoke``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.browser import PageWatch
from tests.e2e.conftest import start_mesh

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[LocalMesh]:
    m = start_mesh(tmp_path_factory.mktemp("revoked-mesh"), engine="sim")
    try:
        yield m
    finally:
        m.stop()


def _revoke(home: Path, node_id: str) -> None:
    env = {**os.environ, "LLM_MESH_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "registry", "nodes", "revoke", node_id],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_the_operator_view_marks_a_revoked_node_in_words(
    mesh: LocalMesh, browser: Any, watch: PageWatch
) -> None:
    token, node_id = mesh._operator_token, mesh._node_id
    assert token and node_id
    page = watch.attach(browser.new_context(viewport={"width": 1280, "height": 900}).new_page())
    page.set_default_timeout(TIMEOUT_MS)
    row = f'#op-result tr[data-node="{node_id}"]'
    page.goto(mesh.registry_url + "/dashboard/operator")
    page.fill("#op-token", token)
    page.press("#op-token", "Enter")
    page.wait_for_selector(row)
    assert page.locator(f"{row} [data-revoked]").count() == 0  # live: not marked
    _revoke(mesh.settings.home, node_id)
    page.reload()  # the token is kept in the tab: the view again
    page.wait_for_selector(f"{row} th [data-revoked]")
    assert page.locator(f"{row} th [data-revoked]").inner_text() == "revoked"
    page.context.close()
