"""``llm-mesh node info``'s models table says "(simulated)" for a simulated model, and a
load time only for a model not loaded."""

from __future__ import annotations

from rich.console import Console

from LLM_Mesh.cli.node_render import hosted_models_table


def test_hosted_models_table_labels_simulated_models() -> None:
    console = Console(width=250, record=True, color_system=None)
    console.print(
        hosted_models_table(
            [
                {"id": "gemma-3-270m", "simulated": True, "loaded": True},
                {"id": "mistral-7b", "simulated": False, "loaded": True},
            ]
        )
    )
    out = console.export_text()
    assert "gemma-3-270m (simulated)" in out and "mistral-7b (simulated)" not in out


def test_node_info_shows_trust_and_why_it_is_quarantined() -> None:
    from LLM_Mesh.cli.node_render import info_table

    console = Console(width=250, record=True, color_system=None)
    quality = {
        "trust_score": 0.0,
        "trusted": False,
        "canary_passed": 2,
        "canary_failed": 1,
        "quarantined": [
            {
                "model": "gemma-3-270m",
                "since": "2026-12-01T14:00:00+00:00",
                "reason": "canary: token at token 0",
            }
        ],
    }
    console.print(info_table({"node_id": "n1", "quality": quality}))
    out = console.export_text()
    assert "0.00 (not trusted)" in out and "2 passed, 1 failed" in out
    assert "QUARANTINED" in out and "canary: token at token 0" in out and "gemma-3-270m" in out
    console.print(info_table({"node_id": "n1", "quality": None}))
    assert "unknown (the registry did not say)" in console.export_text()
    console.print(info_table({"node_id": "n1"}))  # standalone: no trust row at all
    assert "trust" not in console.export_text()


def test_node_info_shows_whether_the_registrys_health_checks_pass() -> None:
    from LLM_Mesh.cli.node_render import info_table

    def shown(health: object) -> str:
        console = Console(width=250, record=True, color_system=None)
        registry = {"url": "http://r", "registered": True}
        if health != "absent":
            registry["health"] = health
        console.print(info_table({"node_id": "n1", "registry": registry}))
        return " ".join(console.export_text().split())

    failing = {"ok": False, "since": 1_800_000_000.0, "checked_at": 1_800_000_300.0,
               "why": "ConnectError: connection refused"}  # fmt: skip
    out = shown(failing)
    assert "health checks │ FAILING since 2027-01-15 08:00:00 UTC" in out, out
    assert "ConnectError: connection refused" in out and "out of routing" in out
    out = shown({"ok": True, "since": 1_800_000_000.0, "checked_at": 1_800_000_300.0})
    assert "health checks │ passing (last 2027-01-15 08:05:00 UTC)" in out, out
    assert "not reported" in shown(None) and "not reported" in shown("absent")
    assert "not reported" in shown({"ok": "what"})  # not understood: as absent
    console = Console(width=250, record=True, color_system=None)
    console.print(info_table({"node_id": "n1"}))  # standalone: no health-check row
    assert "health checks" not in console.export_text()
    assert "revoked by" not in shown(None)


def test_node_info_says_a_node_not_registered_has_no_health_checks() -> None:
    """Found 2026-12-07 (newuser44): a revoked node's `node info` read "not reported (no
    check yet, or a registry older than this field)" under "not registered: revoked"."""
    from LLM_Mesh.cli.node_render import info_table

    console = Console(width=250, record=True, color_system=None)
    registry = {"url": "http://r1", "registered": False, "last_error": "revoked by the registry",
                "revoked_by": ["http://r1"]}  # fmt: skip
    console.print(info_table({"node_id": "n1", "registry": registry}))
    out = " ".join(console.export_text().split())
    assert "health checks │ none: the node is not registered" in out, out
    assert "registry older" not in out


def test_node_info_names_the_registries_that_revoked_the_node() -> None:
    from LLM_Mesh.cli.node_render import info_table

    console = Console(width=250, record=True, color_system=None)
    registry = {"url": "http://r1,http://r2", "registered": True,
                "revoked_by": ["http://r1", "http://[evil]\x1b[2J"]}  # fmt: skip
    console.print(info_table({"node_id": "n1", "registry": registry}))
    out = " ".join(console.export_text().split())
    assert "revoked by │ http://r1, http://[evil]" in out and "\x1b[2J" not in out, out


def test_node_plan_loses_no_column_at_80_columns() -> None:
    """Found 2026-12-04: at 80 columns ``llm-mesh node plan`` gave its "why" column no
    width at all (each model's reason vanished)."""
    from LLM_Mesh.cli.node_render import plan_table
    from LLM_Mesh.core.catalog import GB
    from LLM_Mesh.core.plan import plan_models
    from LLM_Mesh.core.schemas import Hardware

    entries = plan_models(Hardware(memory_bytes=25 * GB, disk_free_bytes=80 * GB))
    for width in (80, 100, 160):
        console = Console(width=width, record=True, color_system=None)
        console.print(plan_table(entries, width))
        out = console.export_text()
        squashed = " ".join(out.replace("│", " ").split())
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= width
        for e in entries:
            assert e.model in out, (width, e.model, out)
            assert "does not fit" in squashed and "download source" in squashed, out


def test_node_models_list_keeps_names_and_the_hash_whole_at_80_and_160_columns() -> None:
    """``llm-mesh node models list``: the file name (to pass to the next command) and the
    sha256 prefix (to compare) never broken mid-word, at a default and a wide terminal (a
    guard: it held before fitted_table's word floor too, which ``keys list`` needed)."""
    from pathlib import Path

    from LLM_Mesh.cli.node_render import stored_models_table
    from LLM_Mesh.node.model_store import StoredModel

    sha = "3f1a9c2e77d0b4e1" + "0" * 48
    models = [
        StoredModel("gemma-3-270m-it-Q4_K_M.gguf", Path("/m/a.gguf"), 253_000_000, sha,
                    "gemma-3-270m", True, True),
        StoredModel("my-model.gguf", Path("/m/b.gguf"), 1_200_000_000, "ab" * 32, "my-model",
                    False, False),
    ]  # fmt: skip
    for width in (80, 160):
        console = Console(width=width, record=True, color_system=None)
        console.print(stored_models_table(models, width))
        out = console.export_text()
        assert max(len(line) for line in out.splitlines()) <= width, out
        for whole in ("gemma-3-270m-it-Q4_K_M.gguf", "3f1a9c2e77d0b4e1…", "configured", "1.2 GB"):
            assert whole in out, (width, whole, out)


def test_hosted_models_table_gives_a_load_time_only_to_a_model_not_loaded() -> None:
    """Found 2026-12-07 (newuser39, ``llm-mesh up``'s node): a loaded model's ``load_time_s``
    is 0 (no wait for it), and ``node info`` said "load time 0.0 s", read as how long the
    model took to load."""
    console = Console(width=250, record=True, color_system=None)
    console.print(
        hosted_models_table(
            [
                {"id": "gemma-3-270m", "loaded": True, "load_time_s": 0.0},
                {"id": "mistral-7b", "loaded": False, "load_time_s": 5.25},
            ]
        )
    )
    cells = {
        row[1]: row[3]  # model -> load time
        for row in (
            [c.strip() for c in line.split("│")] for line in console.export_text().splitlines()
        )
        if len(row) > 3
    }
    assert cells == {"gemma-3-270m": "-", "mistral-7b": "5.2 s"}, cells


def test_hosted_models_table_shows_the_measured_speed() -> None:
    """``measured`` of ``/mesh/info`` (``core/measured_speed.py``): "-" before any measured
    answer, else the average tok/s with its answers and time to first token, "(simulated)"
    for a simulated engine's."""
    measured = {"answers": 3, "tokens_per_s": 41.48, "ttft_ms": 250.4, "simulated": True}
    console = Console(width=250, record=True, color_system=None)
    console.print(
        hosted_models_table(
            [
                {"id": "gemma-3-270m", "loaded": True, "measured": measured},
                {"id": "mistral-7b", "loaded": True, "measured": None},
                {"id": "qwen", "loaded": True, "measured": {**measured, "simulated": False}},
            ]
        )
    )
    lines = console.export_text().splitlines()
    assert any("measured tok/s" in line for line in lines)
    gemma = next(line for line in lines if "gemma-3-270m" in line)
    assert "41.5 (3 answers, first token 250 ms) (simulated)" in gemma
    mistral = next(line for line in lines if "mistral-7b" in line)
    assert mistral.rstrip(" │|").endswith("-")
    qwen = next(line for line in lines if "qwen" in line)
    assert "41.5 (3 answers" in qwen and "(simulated)" not in qwen


def test_node_info_says_a_verifier_is_one() -> None:
    """Found 2026-12-07 (newuser41): the admin's ``registry nodes trust NODE`` made the node a
    canary verifier, and its ``node info`` said only ``0.50 (not trusted)``, as for any
    unprobed node: now its role is said, and why the score stays below the threshold."""
    from LLM_Mesh.cli.node_render import info_table

    def trust_row(quality: dict[str, object]) -> str:
        console = Console(width=250, record=True, color_system=None)
        console.print(info_table({"node_id": "n1", "quality": quality}))
        return next(line for line in console.export_text().splitlines() if " trust " in line)

    row = trust_row({"trust_score": 0.5, "trusted": False, "verifier": True})
    assert "0.50 (not trusted; a canary verifier" in row, row
    assert "verifier" not in trust_row({"trust_score": 0.5, "trusted": False})
    assert "verifier" not in trust_row({"trust_score": 0.5, "trusted": False, "verifier": "yes"})
