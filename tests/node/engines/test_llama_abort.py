"""The abort switch of a model's context (llama_abort.py)."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from LLM_Mesh.node.engines import llama_abort
from LLM_Mesh.node.engines.llama_abort import AbortSwitch, _strlen, install


def test_only_the_running_generation_can_be_tripped() -> None:
    switch, a, b = AbortSwitch(), object(), object()
    switch.arm(a)
    assert not switch.trip(b) and not switch.tripped()
    assert switch.trip(a) and switch.tripped() and switch.trips == 1
    switch.arm(b)  # the next generation starts untripped
    assert not switch.tripped()
    assert not switch.trip(a) and not switch.tripped()  # a late trip of a: no-op
    switch.disarm(a)  # a's end does not disarm b
    assert switch.trip(b) and switch.tripped()
    switch.disarm(b)
    assert not switch.tripped() and not switch.trip(b) and switch.trips == 2


def test_the_flag_reads_as_llama_cpp_reads_it() -> None:
    # llama.cpp calls strlen(data) as bool (*)(void *): 0 goes on, 1 aborts
    strlen = _strlen()
    if strlen is None:
        pytest.skip("no libc strlen in this process")
    strlen.restype, strlen.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    switch, me = AbortSwitch(), object()
    switch.arm(me)
    assert strlen(switch.address) == 0
    switch.trip(me)
    assert strlen(switch.address) == 1
    switch.disarm(me)
    assert strlen(switch.address) == 0


def test_install_on_a_stand_in_and_on_something_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class StandIn:
        check: Any = None

        def set_abort_callback(self, check: Any) -> None:
            self.check = check

    monkeypatch.setattr(llama_abort, "_warned", False, raising=False)
    switch, stand_in = AbortSwitch(), StandIn()
    assert install(stand_in, switch) and stand_in.check == switch.tripped
    assert not install(object(), switch)
    assert "not installed" in caplog.text
    # found 2026-12-03 (review): logged at every load, and a pool that swaps models
    # under its budget loads one per request: once a process
    assert not install(object(), AbortSwitch())
    assert caplog.text.count("not installed") == 1


def test_no_process_symbols_as_on_windows_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # found 2026-12-03 (review): on Windows ctypes.CDLL(None) raises TypeError (its
    # '/' in name), which escaped _strlen and failed every model load
    def windows_cdll(name: Any, *_a: Any, **_k: Any) -> Any:
        return "/" in name  # what CPython 3.11's CDLL.__init__ does on nt

    monkeypatch.setattr(ctypes, "CDLL", windows_cdll)
    monkeypatch.setattr(llama_abort, "_warned", False, raising=False)
    assert _strlen() is None

    class Ctx:
        ctx = 1234  # never handed to llama.cpp: install gives up first

    class RealLike:
        _ctx = Ctx()

    assert not install(RealLike(), AbortSwitch())
    assert "not installed" in caplog.text
