"""``LLM_Mesh/node/keys.py``: the lock a running node holds on its key, and the URL it
writes there for ``node pause|resume|drain|info``."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.node.keys import key_in_use, running_node_url


def test_a_node_started_without_a_url_leaves_no_stale_one_read(tmp_path: Path) -> None:
    """Found 2026-12-07 (review41b): a node killed (SIGKILL, the OOM killer) left the URL
    it wrote into its key's lock (``node start --port 9000``); the next node on that key,
    started with no URL to write (``port = 0``, an ephemeral port: ``node start`` writes
    none; a caller of ``key_in_use`` without one), kept that text while it held the lock,
    so ``node pause`` went to 9000 (another home's node, or none), unchecked: a URL read from
    the lock is taken as this home's own node's (``node/control.home_node_target``). A node
    that writes no URL empties the lock when it takes it."""
    key = tmp_path / "node.key"
    (tmp_path / "node.key.lock").write_text("http://127.0.0.1:9000")  # a killed node's
    with key_in_use(key):
        assert running_node_url(key) is None
    with key_in_use(key, "http://127.0.0.1:8802"):
        assert running_node_url(key) == "http://127.0.0.1:8802"
    assert running_node_url(key) is None
