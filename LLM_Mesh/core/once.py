"""``cached_property`` without a lock: a value computed on its first read, then kept in the
instance's ``__dict__`` (later reads find it there, as plain attributes; the descriptor is
not called again).

Python 3.11's ``functools.cached_property`` takes an ``RLock`` on every first read (one
lock for every instance of the class: removed in 3.12 for that reason); the gateway makes
an instance a request (``registry/job.py``'s ``Job.prompt_bound``,
``registry/settle_ops.py``'s ``Answer.total``), so each paid the lock (perf45,
docs/benchmarks.md). Two threads reading at once may each compute the value: only for
functions of the instance's own (frozen) fields, whose value is the same both times.
A frozen dataclass's ``__setattr__`` is not called (the ``__dict__`` is written), as with
``functools``'s. A class whose instances have no ``__dict__`` (``__slots__``, a
``dataclass(slots=True)``) is refused as it is made (found 2026-12-07, review45: its first
read raised ``AttributeError``, which ``hasattr``/``getattr(..., default)`` and a class's
``__getattr__`` take for a missing attribute, silently; ``functools``' raises ``TypeError``
on the read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["cached_property"]

T = TypeVar("T")


class cached_property(Generic[T]):
    """See the module docstring."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name: str | None = None
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name is not None and name != self.name:
            raise TypeError(f"one cached_property cannot be both {self.name!r} and {name!r}")
        if not owner.__dictoffset__:  # no __dict__ to keep the value in (the docstring)
            raise TypeError(
                f"cached_property {name!r} needs a __dict__ on {owner.__name__}'s instances "
                "(it has __slots__)"
            )
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        name = self.name
        if name is None:
            raise TypeError("a cached_property must be set on a class (__set_name__)")
        value = instance.__dict__[name] = self.func(instance)
        return value
