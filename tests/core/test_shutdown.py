"""The node's shutdown budget: the drain, the goodbye's deadline, when a goodbye is retried;
the registry's stop bound and what it logs when a stop runs past it."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.shutdown import (
    DEFAULT_REGISTRY_SHUTDOWN_S,
    DEFAULT_SHUTDOWN_S,
    STOP_OVERDUE_STATUS,
    ShutdownBudget,
    overdue_warning,
    retry_goodbye,
)


def test_the_default_fits_well_inside_the_grace_llm_mesh_up_gives() -> None:
    b = ShutdownBudget()
    assert b.total_s == DEFAULT_SHUTDOWN_S == 12.0 < 15.0  # local_mesh.LocalMesh.stop
    assert b.drain_s == 8.5  # 12 - 2.5 kept for the goodbye - 1 for closing
    # the drain took all its time: the goodbye ends 11 s after the signal, not 6 s later
    assert b.goodbye_deadline(began=0.0, now=8.6) == 11.0
    # nothing was in flight: the goodbye has its own 6 s
    assert b.goodbye_deadline(began=0.0, now=0.1) == pytest.approx(6.1)


def test_without_a_signal_the_goodbye_has_its_own_budget() -> None:
    assert ShutdownBudget().goodbye_deadline(began=None, now=50.0) == 56.0


def test_a_late_goodbye_gets_no_time_rather_than_a_deadline_in_the_past() -> None:
    b = ShutdownBudget(total_s=4.0)
    assert b.drain_s == 0.5
    assert b.goodbye_deadline(began=0.0, now=2.0) == 3.0
    assert b.goodbye_deadline(began=0.0, now=9.0) == 9.0  # now: no try at all


def test_a_total_smaller_than_the_reserves_drains_nothing() -> None:
    assert ShutdownBudget(total_s=2.0).drain_s == 0.0


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_a_total_that_is_not_positive_is_refused(total: float) -> None:
    with pytest.raises(ValueError, match=rf"^a shutdown needs a positive total, got {total!r}$"):
        ShutdownBudget(total_s=total)


@pytest.mark.parametrize("step", ["goodbye_s", "goodbye_min_s", "close_s"])
def test_a_negative_step_is_refused(step: str) -> None:
    with pytest.raises(ValueError, match=r"^shutdown steps take zero seconds or more$"):
        ShutdownBudget(**{step: -0.1})


def test_short_totals_and_zero_second_steps_are_taken() -> None:
    """The bounds are exclusive for the total (any positive time) and inclusive for the
    steps (a step may take no time at all)."""
    assert ShutdownBudget(total_s=0.5).drain_s == 0.0
    b = ShutdownBudget(total_s=3.0, goodbye_s=0.0, goodbye_min_s=0.0, close_s=0.0)
    assert b.drain_s == 3.0
    assert b.goodbye_deadline(began=0.0, now=1.0) == 1.0  # no goodbye time of its own
    assert ShutdownBudget(goodbye_min_s=0.5, close_s=0.5).drain_s == 11.0


def test_retry_goodbye() -> None:
    ok = {"tries": 1, "max_tries": 3, "now": 1.0, "deadline": 6.0}
    assert retry_goodbye(refused=False, **ok)  # a timeout or a 5xx: again
    assert not retry_goodbye(refused=True, **ok)  # refused: the registry is gone
    assert not retry_goodbye(refused=False, **{**ok, "tries": 3})
    assert not retry_goodbye(refused=False, **{**ok, "now": 6.0})


def test_the_registry_bound_is_over_settlements_stop_and_under_systemds_kill() -> None:
    from LLM_Mesh.registry.settle_upkeep import SettleUpkeep

    assert SettleUpkeep.stop_limit_s + 20.0 <= DEFAULT_REGISTRY_SHUTDOWN_S == 80.0 < 90.0
    assert STOP_OVERDUE_STATUS == 70


def test_the_overdue_warning_names_the_stuck_awaits_and_threads_and_counts_idle_loops() -> None:
    stuck = ["uvicorn.lifespan.on.LifespanOn.main", "LLM_Mesh.hot_routes.HotRoutesApp.__call__",
             "starlette.routing.Router.lifespan", "LLM_Mesh.registry.app.lifespan",
             "LLM_Mesh.registry.settlement.Settlement.stop", "asyncio.tasks.wait_for"]  # fmt: skip
    idle = ["LLM_Mesh.registry.health.HealthChecker._check_loop", "asyncio.tasks.sleep"]
    msg = overdue_warning(4.0, "SIGTERM", [stuck, idle, idle, []], ["Thread-3 (worker)"])
    assert msg.startswith("the registry did not stop within 4 s of SIGTERM: still running: ")
    assert (
        "… > registry.app.lifespan > registry.settlement.Settlement.stop > asyncio.tasks.wait_for;"
        in msg
    )
    assert "HotRoutesApp" not in msg and "_check_loop" not in msg  # ASGI layers, idle loops
    assert "thread Thread-3 (worker); 2 loop(s) sleeping till their next period;" in msg
    assert "exiting with status 70" in msg and "LLM_MESH_REGISTRY_SHUTDOWN_S" in msg
    bare = overdue_warning(80.0, "SIGINT", [], [])
    assert "within 80 s of SIGINT: still running: nothing the process can name" in bare


# written against the module's mutants (mut33, 2026-12-06)


def test_the_overdue_warning_in_full_with_frames_left_out_shown_once() -> None:
    stuck = ["uvicorn.main", "LLM_Mesh.hot_routes.HotRoutesApp.__call__", "starlette.a.b",
             "LLM_Mesh.registry.app.lifespan", "asyncio.tasks.wait_for"]  # fmt: skip
    assert overdue_warning(4.0, "SIGTERM", [stuck], []) == (
        "the registry did not stop within 4 s of SIGTERM: still running: … > "
        "registry.app.lifespan > asyncio.tasks.wait_for; exiting with status 70 (what those "
        "would still have written is lost; LLM_MESH_REGISTRY_SHUTDOWN_S sets the bound)"
    )


def test_a_loop_is_idle_by_its_innermost_frame_only() -> None:
    """Three frames: the innermost decides (a sleep inside a busy frame is idle; a busy
    innermost frame under a sleep is not)."""
    idle = ["LLM_Mesh.a.loop", "LLM_Mesh.b.step", "asyncio.tasks.sleep"]
    busy = ["LLM_Mesh.a.loop", "asyncio.tasks.sleep", "asyncio.tasks.wait_for"]
    msg = overdue_warning(4.0, "SIGTERM", [idle, busy], [])
    assert "still running: a.loop > … > asyncio.tasks.wait_for; 1 loop(s) sleeping" in msg
    alone = overdue_warning(4.0, "SIGTERM", [idle], [])
    assert "still running: 1 loop(s) sleeping till their next period; exiting" in alone
