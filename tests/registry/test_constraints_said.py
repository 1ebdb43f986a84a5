"""A refusal "within the request's constraints" names them (found 2026-12-06, newuser35: a
key made with ``llm-mesh registry keys create --strict-regions`` asked ``up``'s node, which
declares no region, and got only ``no healthy node serves 'gemma-3-270m' right now within
the request's constraints``, though its user had sent no constraint: the key's own regions
count, and nothing said which)."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.registry.extensions import Extensions
from LLM_Mesh.registry.no_node import constraints_said
from tests.registry.helpers import running
from tests.registry.test_access import bearer, new_key
from tests.registry.test_send import CHAT, chat


async def test_a_strict_keys_refusal_names_its_regions(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")  # no region, as up's node
        key, _ = await new_key(h, avoid_regions=["us"], strict_regions=True)
        r = await h.client.post(CHAT, json=chat(), headers=bearer(key))
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert (
        "within the request's constraints (avoid_regions us, strict_regions: no node of "
        "undeclared region (the request's and its API key's))"
    ) in message, message


async def test_the_requests_own_constraints_are_named(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1", region="eu-west")
        body = chat(avoid_regions=["EU"], deny_nodes=["n9"], trusted_only=True)
        r = await h.client.post(CHAT, json=body)
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert (
        "(avoid_regions eu (the request's and its API key's); deny_nodes: 1 named; trusted_only)"
    ) in message, message


async def test_no_constraint_no_words(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1", models=["mistral-7b"])
        r = await h.client.post(CHAT, json=chat())
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "constraints" not in message and "avoid_regions" not in message, message


def test_a_clients_regions_are_cut_and_printable() -> None:
    """Regions are the client's text: at most 8 named, each at most 40 printable
    characters (a control character shown as ``?``), the rest counted."""
    many = frozenset({f"r{i:02d}" for i in range(10)} | {"x" * 100, "a\nb"})
    said = constraints_said(Extensions(avoid_regions=many))
    assert "\n" not in said, said
    assert said.startswith("avoid_regions a?b, r00, r01, r02, r03, r04, r05, r06 and 4 more")
    long_one = constraints_said(Extensions(avoid_regions=frozenset({"x" * 100})))
    assert "x" * 40 + "…" in long_one and "x" * 41 not in long_one, long_one
    assert constraints_said(Extensions()) == ""
