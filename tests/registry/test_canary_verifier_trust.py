"""A verifier's trust (``registry/quality.py``, ``core/trust.py``): the admin's reference is
trusted for the models it serves unless quarantined, in routing and in ``GET /mesh/nodes``.

Found 2026-12-07 (user41b): a verifier is not probed against itself, so it scored 0.5
(unverified) and ``trusted_only`` never routed to it; the listing said ``trusted: false``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from LLM_Mesh.core.canary_shape import Shape
from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.registry.canary_scheduler import CanaryScheduler
from LLM_Mesh.registry.ports_canary import VerifierMark
from tests.registry.canary_mesh import MODEL, SHA, canned, mesh, prober, register, run_round, trust
from tests.registry.helpers import Harness

__all__ = ["mesh"]


def listed(h: Harness, rows: list[dict[str, Any]], node_id: str) -> dict[str, Any]:
    return next(n for n in rows if n["node_id"] == node_id)


async def test_a_verifier_alone_serves_a_trusted_only_request(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    for _ in range(5):
        r = await mesh.client.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "verifier"
    q = mesh.runtime.quality
    assert q is not None
    assert q.trusted_nodes(MODEL) == {"verifier"}
    assert q.trusted_nodes("another-model") == frozenset()  # not a model it serves
    rows = (await mesh.client.get("/mesh/nodes")).json()["nodes"]
    v = listed(mesh, rows, "verifier")
    assert v["verifier"] is True and v["trusted"] is True and v["trust_score"] == 1.0
    assert listed(mesh, rows, "new")["trusted"] is False


async def test_a_quarantined_verifier_does_not(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    await q.record("verifier", MODEL, ok=False, reason="usage audit: too many", probe=False)
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    assert r.status_code == 503
    assert q.trusted_nodes(MODEL) == frozenset()
    v = listed(mesh, (await mesh.client.get("/mesh/nodes")).json()["nodes"], "verifier")
    assert v["trusted"] is False and v["trust_score"] == 0.0


async def test_a_verifier_is_not_trusted_for_a_file_it_declares_no_sha256_of(
    mesh: Harness,
) -> None:
    # no verifier can check a model without a sha256 (docs/security.md: trusted_only avoids
    # them), the verifier itself included
    await register(mesh, "verifier", sha=None)
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    assert q.trusted_nodes(MODEL) == frozenset()
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    assert (await mesh.client.post("/v1/completions", json=body)).status_code == 503


OTHER = "mistral-7b"  # a model the admin never checked the verifier for
SHA_B = "b" * 64


async def test_a_verifier_marked_for_one_model_is_not_the_reference_for_one_it_declares_later(
    mesh: Harness,
) -> None:
    """Found open 2026-12-07 (session 42), closed 2026-12-07 (verifier43): the admin marked
    the verifier for ``MODEL`` (what it served then); it then declares ``OTHER`` too. Its
    answers were the reference for ``OTHER`` (a liar serving the same made-up file passed),
    and ``trusted_only`` routed ``OTHER`` to it. Now neither: the mark names ``MODEL``."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")  # marked for MODEL, the file it serves now
    await register(mesh, "verifier", models={MODEL: SHA, OTHER: SHA_B})  # declared later
    await register(mesh, "accomplice", canned, models={OTHER: SHA_B})
    await register(mesh, "peer")
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    assert p.verifiers_for("accomplice", OTHER) == []
    assert p.verifiers_for("peer", MODEL) == ["verifier"]  # still the reference for MODEL
    (result,) = await run_round(mesh, node="accomplice", model=OTHER)
    assert result["verdict"] == "unverified", result
    assert q.trusted_nodes(OTHER) == frozenset()
    assert q.trusted_nodes(MODEL) == {"verifier"}
    body = {"model": OTHER, "prompt": "x", "trusted_only": True}
    assert (await mesh.client.post("/v1/completions", json=body)).status_code == 503
    v = listed(mesh, (await mesh.client.get("/mesh/nodes")).json()["nodes"], "verifier")
    assert v["verifier"] is True  # a verifier still (for MODEL)


async def test_a_verifier_declaring_another_file_under_its_marked_model_is_not_its_reference(
    mesh: Harness,
) -> None:
    """The mark is the file the admin checked (its sha256), not the name: the verifier
    re-registering ``MODEL`` with another file is no reference for that file, nor trusted
    for ``MODEL`` under ``trusted_only``, until marked again."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    await register(mesh, "verifier", sha=SHA_B)  # another file under the checked name
    await register(mesh, "accomplice", canned, sha=SHA_B)
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    assert p.verifiers_for("accomplice", MODEL) == []
    assert q.trusted_nodes(MODEL) == frozenset()
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    assert (await mesh.client.post("/v1/completions", json=body)).status_code == 503
    await trust(mesh, "verifier")  # the admin checks the new file and marks it
    assert p.verifiers_for("accomplice", MODEL) == ["verifier"]
    assert q.trusted_nodes(MODEL) == {"verifier"}


async def test_a_verifier_probed_on_a_model_it_is_not_marked_for_is_told_no_verifier_hosts_it(
    mesh: Harness,
) -> None:
    """Found 2026-12-07 (review43): probed on a model it declared after its mark, with no
    other verifier, the verifier's verdict said "a verifier is not checked against itself",
    as if it were the reference for that file: it is not (verifier43), so no verifier hosts
    it, and marking another verifier of that file is what would check it."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")  # marked for MODEL
    await register(mesh, "verifier", models={MODEL: SHA, OTHER: SHA_B})
    (unmarked,) = await run_round(mesh, node="verifier", model=OTHER)
    assert unmarked["verdict"] == "unverified", unmarked
    assert unmarked["detail"].startswith("no verifier hosts this file: mark a node"), unmarked
    (marked,) = await run_round(mesh, node="verifier", model=MODEL)  # its own file: as before
    assert "a verifier is not checked against itself" in marked["detail"], marked


async def test_marks_made_before_0034_alone_start_no_walk_over_every_node(mesh: Harness) -> None:
    """Found 2026-12-07 (review43): with only marks made before migration 0034 (no model:
    they cover none), the scheduler walked every node each interval to find no verifier
    for any (the walk the scheduler skips with no verifier: 10,000 nodes held the loop)."""
    await register(mesh, "verifier")
    await register(mesh, "a")
    q = mesh.runtime.quality
    assert q is not None
    # listed as the SQL store lists a mark the code before 0034 wrote: no model
    mesh.store.verifiers["verifier"] = VerifierMark(
        "verifier", trusted_at=datetime.now(timezone.utc)
    )
    await q.load()
    assert q.verifiers == {"verifier": {}}
    p = prober(mesh)
    sched = CanaryScheduler(p, ProbeBudget(min_interval_s=600.0), rng=random.Random(3))
    walked: list[int] = []
    targets = p.targets

    def counted(*args: Any, **kw: Any) -> list[tuple[str, str]]:
        walked.append(1)
        return targets(*args, **kw)

    p.targets = counted  # type: ignore[method-assign]
    assert await sched.poll() == [] and walked == []
    await trust(mesh, "verifier")  # marked again, for MODEL: the walk finds "a" to probe
    assert await sched.poll() == [] and walked == [1] and ("a", MODEL) in sched.due


async def test_a_reference_cached_from_a_verifier_unmarked_since_is_not_used(
    mesh: Harness,
) -> None:
    """Found 2026-12-07 (review43): references were cached by file and body alone, so once
    the admin unmarked a verifier that lied (``registry nodes untrust``, or a model of it),
    its cached answers stayed the probes' reference while another verifier of the file was
    marked: an honest node, cleared, was quarantined again by the liar's old answer."""
    await register(mesh, "a-liar", canned)
    await register(mesh, "b-verifier")
    await register(mesh, "node")
    await trust(mesh, "a-liar")
    await trust(mesh, "b-verifier")
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    shape = Shape()
    first = await p.probe("node", MODEL, prompt="def f():", shape=shape)
    assert (first.verdict, first.verifier) == ("fail", "a-liar")  # the liar's reference
    assert await mesh.store.untrust_verifier("a-liar")  # the admin unmarks the liar
    await q.load()
    await q.clear("node")
    again = await p.probe("node", MODEL, prompt="def f():", shape=shape)
    assert (again.verdict, again.verifier) == ("pass", "b-verifier"), again


async def test_a_verifier_marked_again_brings_back_no_reference_cached_before(
    mesh: Harness,
) -> None:
    """Found open 2026-12-07 (review43's note), closed verifier44: references were cached per
    verifier, so one unmarked (it served a wrong file) and marked again once the admin had
    checked it got its old answers back as references, and an honest node, cleared, failed
    against them. Now a reference is kept under the mark it was asked under: unmarked and
    marked again (by the admin's CLI, this replica reading the store only after both), the
    verifier is asked anew."""
    await register(mesh, "verifier", canned)  # wrong answers (another file, say)
    await register(mesh, "node")
    await trust(mesh, "verifier")
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    shape = Shape()
    first = await p.probe("node", MODEL, prompt="def f():", shape=shape)
    assert (first.verdict, first.verifier) == ("fail", "verifier")  # its answer cached
    assert await mesh.store.untrust_verifier("verifier")  # the admin unmarks it,
    await register(mesh, "verifier")  # checks it serves the right file now,
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert await mesh.store.trust_verifier("verifier", {MODEL: SHA}, later)  # marks it again
    await q.load()  # this replica reads the store after both
    await q.clear("node")
    again = await p.probe("node", MODEL, prompt="def f():", shape=shape)
    assert (again.verdict, again.verifier) == ("pass", "verifier"), again
