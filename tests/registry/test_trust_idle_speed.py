"""The trust score's speed check judges the speed a node showed, not the router's estimate
decayed while the node is idle (``registry/quality.py``, ``core/trust.py``)."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running


async def test_an_idle_node_keeps_its_trust_its_shown_speed_earned(tmp_path: Path) -> None:
    """Found 2026-12-07 (newuser40): two honest gemma-3-270m nodes of ``llm-mesh up`` read
    trust 0.25 ("speed 0.50") on the dashboard after a few idle minutes. The router's
    per-token estimate decays toward zero while a node is idle (60 s time constant, so an
    idle node is tried again), and the speed check read that decayed figure: 266 ms a token
    looked like thousands of tokens/s, more than the node's memory could give, after some
    six minutes of no request."""
    async with running(tmp_path) as h:
        await h.register("node-a", ["mistral-7b"])  # 4.5 GB: over ~89 tokens/s is unexplained
        quality = h.runtime.quality
        assert quality is not None
        st = h.runtime.routing.router.node("node-a")
        assert st is not None
        now = h.runtime.routing.clock()
        st.per_token.observe(50.0, now)  # 20 tokens/s: what a CPU gives
        assert quality.score("node-a").speed == 1.0
        h.clock.advance(600.0)  # ten idle minutes
        assert quality.score("node-a").speed == 1.0
        st.per_token.observe(1.0, h.runtime.routing.clock())  # 1,000 tokens/s shown: a lie
        assert quality.score("node-a").speed < 1.0
