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


def test_one_sleeper_leaving_keeps_the_others_of_its_model() -> None:
    book: WakeOnChange[str] = WakeOnChange()
    book.sleep("m", "r1")
    book.sleep("m", "r2")
    book.leave("m", "r1")
    assert book and book.changed(["m"]) == ["r2"]


def test_a_sleeper_woken_whose_time_also_ends_leaves_the_next_look_alone() -> None:
    """Woken by a change and, before it runs, its look's time up too: its ``leave`` finds
    the model's later sleepers, not itself, and leaves them as they are."""
    book: WakeOnChange[str] = WakeOnChange()
    book.sleep("m", "r1")
    assert book.changed(["m"]) == ["r1"]
    book.sleep("m", "r2")
    book.leave("m", "r1")
    assert book.changed(["m"]) == ["r2"]
