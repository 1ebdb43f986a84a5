"""``fetch_json_sync`` (``llm-mesh status`` and ``models``, the seed's ``get_model_info``,
``receipt verify``'s keys) against a gateway on a real socket that answers with a gzip
bomb or a byte at a time: read as ``MeshClient`` reads, to a bound."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.client import fetch_json_sync
from tests.hostile_gateway import serve


@pytest.fixture
def gateway() -> Iterator[str]:
    yield from serve()


@pytest.mark.parametrize("kind", ["drip", "bomb"])
def test_a_gateways_drip_or_gzip_bomb_is_refused_within_the_bound(gateway: str, kind: str) -> None:
    """Found 2026-12-03: ``httpx.get`` read the answer whole: a gzip bomb of 65 MiB was
    inflated and parsed; a byte each 0.05 s, inside the 0.5 s read timeout, held the caller
    11 s (as long as the gateway liked), then was taken as the listing. The bound: the drip
    read whole takes 61 s; 5 s failed at load 18 (flaky37: the bomb, 12.3 s, 1 run in 2)."""
    t0 = time.monotonic()
    with pytest.raises(AnswerRefused, match="not read further"):
        fetch_json_sync(gateway, f"/{kind}/mesh/models", timeout=0.5)
    assert time.monotonic() - t0 < 30.0  # 3 × the timeout, the thread's start, the load


async def test_it_answers_under_a_running_event_loop(gateway: str) -> None:
    """The seed's ``get_model_info`` is also called from async code: no ``asyncio.run``
    inside the running loop (it runs in a thread of its own)."""
    with pytest.raises(AnswerRefused):
        fetch_json_sync(gateway, "/drip/mesh/models", timeout=0.2)


def test_ctrl_c_ends_the_wait_at_once(gateway: str) -> None:
    """Found 2026-12-03 (review): the read ran in a ``ThreadPoolExecutor`` left by ``with``,
    whose exit waits for the read: Ctrl-C on ``llm-mesh status`` against a gateway that
    answers slowly was held until the read's bound (3 × the timeout), and again at exit."""
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch_json_sync(gateway, "/drip/mesh/models", timeout=10.0)  # bound: 30 s
        assert time.monotonic() - t0 < 8.0  # at once: a margin for a loaded box, not 30 s
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
