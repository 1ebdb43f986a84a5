"""The wake-on-change rule (core/wake_on_change.py): a change for a model wakes that
model's sleepers once, and only them."""

from __future__ import annotations

from LLM_Mesh.core.wake_on_change import WakeOnChange


def test_a_change_wakes_the_models_sleepers_once_and_no_others() -> None:
    book: WakeOnChange[str] = WakeOnChange()
    assert not book and book.changed(["m"]) == []
    book.sleep("m", "r1")
    book.sleep("m", "r2")
    book.sleep("other", "r3")
    assert book
    assert book.changed(["m", "absent"]) == ["r1", "r2"]
    assert book.changed(["m"]) == []  # woken once: a sleeper sleeps again in a new look
    book.sleep("m", "r4")
    book.leave("m", "r4")  # its look ended by its time: not woken later
    book.leave("m", "r4")
    assert book.changed(["m"]) == [] and book.changed(["other"]) == ["r3"] and not book
