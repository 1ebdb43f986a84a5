from __future__ import annotations

import pytest

from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS, may_wait


def test_may_wait_below_the_cap_only() -> None:
    assert may_wait(0) and may_wait(MAX_ANONYMOUS_WAITERS - 1)
    assert not may_wait(MAX_ANONYMOUS_WAITERS)
    assert not may_wait(0, cap=0)
    with pytest.raises(ValueError):
        may_wait(0, cap=-1)
