"""A refusal "within the request's constraints" names them (found 2026-12-06, newuser35: a
key made with ``llm-mesh registry keys create --strict-regions`` asked ``up``'s node, which
declares no region, and got only ``no healthy node serves 'gemma-3-270m' right now within
the request's constraints``, though its user had sent no constraint: the key's own regions
count, and nothing said which). Whose they are is said as it applies (found 2026-12-07,
newuser44: a request sent with no API key was told "the request's and its API key's")."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.registry.extensions import Extensions, read_extensions, with_key_regions
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
        "undeclared region (the API key's))"
    ) in message, message


async def test_the_requests_own_constraints_are_named(tmp_path: Path) -> None:
    """Sent with no API key: the regions are the request's only."""
    async with running(tmp_path) as h:
        await h.register("n1", region="eu-west")
        body = chat(avoid_regions=["EU"], deny_nodes=["n9"], trusted_only=True)
        r = await h.client.post(CHAT, json=body)
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    said = "(avoid_regions eu (the request's); deny_nodes: 1 named; trusted_only)"
    assert said in message, message
    assert "API key" not in message, message


async def test_a_key_without_regions_leaves_them_the_requests(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1", region="eu-west")
        key, _ = await new_key(h)
        r = await h.client.post(CHAT, json=chat(avoid_regions=["eu"]), headers=bearer(key))
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "(avoid_regions eu (the request's))" in message, message


async def test_the_request_and_its_keys_regions_are_both_said(tmp_path: Path) -> None:
    """The key's regions counted even where the request names the same one."""
    async with running(tmp_path) as h:
        await h.register("n1", region="eu-west")
        key, _ = await new_key(h, avoid_regions=["eu"])
        r = await h.client.post(CHAT, json=chat(avoid_regions=["EU"]), headers=bearer(key))
        alone = await h.client.post(CHAT, json=chat(), headers=bearer(key))
    assert r.status_code == alone.status_code == 503, (r.text, alone.text)
    message = r.json()["error"]["message"]
    assert "(avoid_regions eu (the request's and its API key's))" in message, message
    message = alone.json()["error"]["message"]
    assert "(avoid_regions eu (the API key's))" in message, message


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


def test_whose_regions_follow_where_they_came_from() -> None:
    """The parts: the body's regions are the request's, the key's add ``key_regions`` (a
    key of no region adds nothing)."""
    sent = read_extensions({"avoid_regions": ["eu"]}, None)
    assert (sent.request_regions, sent.key_regions) == (True, False)
    strict = read_extensions({"strict_regions": True}, None)
    assert constraints_said(strict).endswith("(the request's)")
    keyed = with_key_regions(read_extensions({}, None), frozenset({"us"}), False)
    assert constraints_said(keyed) == "avoid_regions us (the API key's)"
    same = with_key_regions(sent, frozenset({"EU"}), False)
    assert constraints_said(same) == "avoid_regions eu (the request's and its API key's)"
    assert with_key_regions(sent, frozenset(), False) is sent
