"""A verifier unmarked while a probe is on its way (attack45).

A probe picks its verifier before it asks the node (``CanaryProber._probe``), asks the node
first, then the verifier (tell (e)). Found 2026-12-07 (attack45): the verifier was not checked
again after the node's answer, so one the admin unmarked (``registry nodes untrust``: it
lied) or that switched to another file while the node answered was still asked, and its
answer judged the node: an honest node was quarantined (its operator's earnings held) by
a verifier no longer marked.
"""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.canary_shape import Shape
from LLM_Mesh.registry.canary import UNMARKED_MIDWAY
from tests.registry.canary_mesh import MODEL, canned, mesh, prober, register, trust
from tests.registry.helpers import Harness

__all__ = ["mesh"]

SHA_B = "b" * 64


async def _while_node_answers(mesh: Harness, act: Any) -> Any:
    """The prober, whose ask of ``node`` runs ``act`` before it returns (the admin's act,
    read by this replica, while the node answers)."""
    p = prober(mesh)
    ask = p.ask

    async def asked(node_id: str, *args: Any, **kw: Any) -> Any:
        answer = await ask(node_id, *args, **kw)
        if node_id == "node":
            await act()
        return answer

    p.ask = asked  # type: ignore[method-assign]
    return p


async def test_a_verifier_unmarked_while_the_node_answers_judges_nothing(mesh: Harness) -> None:
    await register(mesh, "liar", canned)
    await register(mesh, "node")
    await trust(mesh, "liar")
    q = mesh.runtime.quality
    assert q is not None

    async def untrust() -> None:
        assert await mesh.store.untrust_verifier("liar")
        await q.load()

    p = await _while_node_answers(mesh, untrust)
    result = await p.probe("node", MODEL, prompt="def f():", shape=Shape())
    assert (result.verdict, result.detail) == ("unverified", UNMARKED_MIDWAY), result
    assert not q.quarantined("node", MODEL)
    assert not any(c["path"] for c in mesh.nodes.nodes["liar:8801"].calls)  # never asked


async def test_another_marked_verifier_judges_in_its_place(mesh: Harness) -> None:
    await register(mesh, "a-liar", canned)
    await register(mesh, "b-verifier")
    await register(mesh, "node")
    await trust(mesh, "a-liar")
    await trust(mesh, "b-verifier")
    q = mesh.runtime.quality
    assert q is not None

    async def untrust() -> None:
        assert await mesh.store.untrust_verifier("a-liar")
        await q.load()

    p = await _while_node_answers(mesh, untrust)
    result = await p.probe("node", MODEL, prompt="def f():", shape=Shape())
    assert (result.verdict, result.verifier) == ("pass", "b-verifier"), result
    assert not q.quarantined("node", MODEL)


async def test_a_verifier_switching_its_file_while_the_node_answers_judges_nothing(
    mesh: Harness,
) -> None:
    await register(mesh, "liar", canned)
    await register(mesh, "node")
    await trust(mesh, "liar")
    q = mesh.runtime.quality
    assert q is not None

    async def switch() -> None:
        await register(mesh, "liar", canned, sha=SHA_B)  # another file under the name

    p = await _while_node_answers(mesh, switch)
    result = await p.probe("node", MODEL, prompt="def f():", shape=Shape())
    assert (result.verdict, result.detail) == ("unverified", UNMARKED_MIDWAY), result
    assert not q.quarantined("node", MODEL)


async def test_a_verifier_unmarked_while_it_answers_judges_nothing(mesh: Harness) -> None:
    await register(mesh, "liar", canned)
    await register(mesh, "node")
    await trust(mesh, "liar")
    q = mesh.runtime.quality
    assert q is not None
    p = prober(mesh)
    ask = p.ask

    async def asked(node_id: str, *args: Any, **kw: Any) -> Any:
        answer = await ask(node_id, *args, **kw)
        if node_id == "liar":  # unmarked before its answer arrives
            assert await mesh.store.untrust_verifier("liar")
            await q.load()
        return answer

    p.ask = asked  # type: ignore[method-assign]
    result = await p.probe("node", MODEL, prompt="def f():", shape=Shape())
    assert (result.verdict, result.detail) == ("unverified", UNMARKED_MIDWAY), result
    assert not q.quarantined("node", MODEL)
