"""The wake-on-change rule (core/wake_on_change.py): a change for a model wakes that
model's sleepers once, and only them."""

from __future__ import annotations

from LLM_Mesh.core.wake_on_change import WakeOnChange


def test_a_change_wakes_the_models_sleepers_once_and_no_others() -> None:
    book: WakeOnChange[list[str]] = WakeOnChange(list)
    assert not book and book.changed(["m"]) == []
    book.sleeper("m").append("r1")
    book.sleeper("m").append("r2")  # the same handle: one per model
    book.sleeper("other").append("r3")
    assert book
    assert book.changed(["m", "absent"]) == [["r1", "r2"]]
    assert book.changed(["m"]) == []  # woken once: a sleeper sleeps again on a new handle
    assert book.sleeper("m") == [] and book.changed(["other"]) == [["r3"]]
