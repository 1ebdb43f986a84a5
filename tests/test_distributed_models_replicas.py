"""distributed_models with several registry replicas: calls begin at the replica that answered
last, a new registry's health check, and the fallback when the replica that left answers."""

from __future__ import annotations

import dataclasses
import functools

import httpx
import pytest

import LLM_Mesh.client as client
import LLM_Mesh.distributed_models as dm
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import (
    ModelUnavailable,
)
from tests.distributed_models_fixtures import Clock, FirstReplicaDown, up
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh


async def test_calls_begin_at_the_replica_that_answered_last(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: each call made a new client that began at the first URL, so with
    that replica hung every call waited ~9 s on it again (handle_task, two calls: ~19 s)."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    admin_key = (mesh.settings.home / "admin.key").read_text().strip()  # replicas share it
    reg = DistributedModelRegistry(
        dataclasses.replace(mesh.settings, admin_key=admin_key),
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )
    await reg.refresh()
    assert replicas.asked_down == ["/mesh/models"]  # left once, then the other replica
    r = await reg.get_response(None, "def f():", "python")
    assert r.model == "gemma-3-270m" and replicas.asked_down == ["/mesh/models"]
    await reg.health_check_all_hosts()  # (a POST: on the replica left it would fail)
    assert replicas.asked_down == ["/mesh/models"]


async def test_a_new_registrys_health_check_leaves_a_replica_answering_503(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: on a registry object that had made no call yet, the admin health
    check (a POST without a request id) ended at the first replica's 503; a pass only checks
    the nodes again, so it is moved to the next replica, as a read is."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    admin_key = (mesh.settings.home / "admin.key").read_text().strip()  # replicas share it
    reg = DistributedModelRegistry(
        dataclasses.replace(mesh.settings, admin_key=admin_key),
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )
    results = await reg.health_check_all_hosts()
    assert len(results) == 1 and results[0]["ok"] is True  # the one node, checked
    assert replicas.asked_down == ["/mesh/health-check"]  # then the refresh: the other one


async def test_fallback_when_the_replica_left_answers_after_the_one_that_says_not_up(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: once calls began at the replica that answered last, a model not up
    there was asked of the 503 replica next, its bare 503 raised, and ``fallback=True`` found
    no model up. The replica's "model not up" (with the models up) is the call's error."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    reg = DistributedModelRegistry(
        mesh.settings, registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )  # fmt: skip
    await reg.refresh()  # the DOWN one left: the next call begins at the other
    r = await reg.get_response("code-llama-7b", "def f():", "python", fallback=True)
    assert r.model == "gemma-3-270m" and r.fallback_from == "code-llama-7b"
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python")
    assert info.value.available == ["gemma-3-270m"] and info.value.model == "code-llama-7b"


def test_get_model_info_begins_at_the_replica_that_answered_last(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05: ``get_model_info()``'s blocking fetches began at the first URL each
    time (a hung one: ~5 s a fetch, two a refresh), unlike the async calls."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    sync = functools.partial(client.fetch_json_sync, transport=replicas)
    monkeypatch.setattr(dm, "fetch_json_sync", sync)
    clock = Clock()
    reg = DistributedModelRegistry(
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}", clock=clock
    )
    assert reg.get_model_info()["models_available"] == ["gemma-3-270m"]
    clock.t += reg.SNAPSHOT_TTL_S + 0.1  # stale: fetched again
    assert reg.get_model_info("gemma-3-270m")["available"] is True
    assert replicas.asked_down == ["/mesh/models"]  # left once, the nodes and the rest not
