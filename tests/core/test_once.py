"""core/once.py: a lock-free ``cached_property`` (perf45)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from LLM_Mesh.core.once import cached_property


@dataclass(frozen=True)
class _Parts:
    parts: tuple[int, ...]
    calls: list[int]

    @cached_property
    def total(self) -> int:
        """The parts' sum."""
        self.calls.append(1)
        return sum(self.parts)


def test_the_value_is_computed_once_and_kept_on_a_frozen_instance() -> None:
    p = _Parts((1, 2, 3), [])
    assert p.total == 6
    assert p.total == 6
    assert p.calls == [1]
    assert vars(p)["total"] == 6  # a plain attribute from then on: the descriptor not called


def test_each_instance_has_its_own_value() -> None:
    a, b = _Parts((1,), []), _Parts((5, 5), [])
    assert (a.total, b.total) == (1, 10)


def test_it_reads_as_functools_does() -> None:
    class Theirs:
        @functools.cached_property
        def n(self) -> int:
            return 7

    class Ours:
        @cached_property
        def n(self) -> int:
            return 7

    assert Ours().n == Theirs().n
    assert isinstance(_Parts.total, cached_property)  # the class reads the descriptor
    assert _Parts.total.__doc__ == "The parts' sum."


def test_it_takes_no_lock() -> None:
    assert not hasattr(_Parts.total, "lock")  # functools' (3.11) takes an RLock a first read


def test_one_descriptor_under_two_names_is_refused() -> None:
    def f(self: object) -> int:
        return 1

    shared = cached_property(f)
    # Python 3.11 wraps __set_name__'s TypeError in a RuntimeError (3.12 does not)
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Twice:
            a = shared
            b = shared

    err = caught.value
    assert "both" in str(err if isinstance(err, TypeError) else err.__cause__)


def test_a_descriptor_never_set_on_a_class_says_so() -> None:
    loose = cached_property(lambda self: 1)
    with pytest.raises(TypeError, match="set on a class"):
        loose.__get__(object())


def _refusal(caught: pytest.ExceptionInfo[BaseException]) -> str:
    err = caught.value  # Python 3.11 wraps __set_name__'s TypeError in a RuntimeError
    return str(err if isinstance(err, TypeError) else err.__cause__)


def test_a_class_with_slots_is_refused_as_it_is_made() -> None:
    """Found 2026-12-07 (review45): on a ``__slots__`` class the first read raised
    ``AttributeError`` (no ``__dict__``), which ``hasattr`` and ``getattr``'s default took
    for a missing attribute, silently (``functools``' raises ``TypeError``)."""
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Slotted:
            __slots__ = ("x",)

            @cached_property
            def doubled(self) -> int:
                return 2

    assert "__dict__" in _refusal(caught)


def test_a_slots_dataclass_is_refused_too() -> None:
    with pytest.raises((TypeError, RuntimeError)) as caught:

        @dataclass(frozen=True, slots=True)
        class Slotted:
            x: int

            @cached_property
            def doubled(self) -> int:
                return 2 * self.x

    assert "__slots__" in _refusal(caught)


def test_slots_with_a_dict_slot_keep_the_value() -> None:
    class WithDict:
        __slots__ = ("__dict__", "x")

        def __init__(self) -> None:
            self.x = 4

        @cached_property
        def doubled(self) -> int:
            return 2 * self.x

    w = WithDict()
    assert w.doubled == 8
    assert vars(w)["doubled"] == 8
