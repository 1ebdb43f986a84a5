from __future__ import annotations

import pytest

from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS, may_wait


def test_may_wait_below_the_cap_only() -> None:
    assert may_wait(0) and may_wait(MAX_ANONYMOUS_WAITERS - 1)
    assert not may_wait(MAX_ANONYMOUS_WAITERS)
    assert not may_wait(0, cap=0)
    with pytest.raises(ValueError):
        may_wait(0, cap=-1)


def test_clear_holds_anonymous_requests_while_a_keyed_one_waits_or_the_share_is_held() -> None:
    """``clear`` (moved from registry/access.AnonymousLast): the gateway and the simulator
    admit anonymous requests by it."""
    from LLM_Mesh.core.anonymous_wait import Clear, clear

    assert clear(False, 3, 1, False, False) is Clear.GO
    assert clear(True, 3, 0, False, False) is Clear.HOLD  # a freed slot goes to the keyed one
    assert clear(False, 3, 0, True, False) is Clear.HOLD  # the share held: the rest is keys'
    assert clear(False, 3, 0, False, True) is Clear.ASK  # constrained: its own pick decides
    assert clear(False, 0, 2, True, False) is Clear.ASK  # none open: the router says
    assert clear(False, 0, 0, True, False) is Clear.GO  # none up: the send stage's 503
