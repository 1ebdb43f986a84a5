"""NodeConfig: validation, TOML round trip, atomic save, the persisted node id, hours."""

from __future__ import annotations

from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import MAX_MODELS_PER_NODE
from LLM_Mesh.node.config import (
    NodeConfig,
    load_node_config,
    parse_hours,
    save_node_config,
    within_hours,
)


def test_defaults() -> None:
    cfg = NodeConfig()
    assert (cfg.host, cfg.port, cfg.engine, cfg.models) == (
        "127.0.0.1",
        8801,
        "llama-cpp",
        ["gemma-3-270m"],
    )
    assert (cfg.max_concurrency, cfg.max_queue, cfg.n_ctx) == (1, 8, 4096)
    assert cfg.effective_public_url == "http://127.0.0.1:8801"
    assert NodeConfig(host="0.0.0.0", port=9000).effective_public_url == "http://127.0.0.1:9000"
    assert NodeConfig(public_url="https://n.example/").effective_public_url == "https://n.example"


def test_registry_url_falls_back_to_settings() -> None:
    s = Settings(registry_url="http://reg:8800")
    assert NodeConfig().effective_registry_url(s) == "http://reg:8800"
    assert NodeConfig(registry_url="http://other/").effective_registry_url(s) == "http://other"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"engine": "gpt"},
        {"port": 0},
        {"max_concurrency": 0},
        {"max_queue": -1},
        {"n_ctx": 4},
        {"engine": "sim", "sim_failure_rate": 2.0},
        {"engine": "sim", "sim_tokens_per_s": 0},
        {"engine": "openai"},
        {"engine": "sim", "models": []},
        {"public_url": "node.example"},
        {"availability_hours": "nine to five"},
    ],
)
def test_invalid_configs_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NodeConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "imitated"),
    [
        ("g\u0435mma-3-270m=/models/mine.gguf", "gemma-3-270m"),  # Cyrillic е, name=path
        ("/models/Mistral-7B.gguf", "mistral-7b"),  # a file's stem, case only
        ("code-1lama-7b=/models/mine.gguf", "code-llama-7b"),
    ],
)
def test_a_model_id_that_looks_like_a_catalog_id_is_refused(ref: str, imitated: str) -> None:
    with pytest.raises(ValueError, match=f"looks like the catalog model '{imitated}'"):
        NodeConfig(engine="sim", models=["gemma-3-270m", ref])
    NodeConfig(engine="sim", models=["gemma-3-270m", "my-org/llama-3-8b=/models/mine.gguf"])


def test_more_models_than_a_node_may_register_are_refused() -> None:
    """The registry refuses a registration of more (400 ``models``): said at the config."""
    many = [f"m{i}=/models/m{i}.gguf" for i in range(MAX_MODELS_PER_NODE + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_MODELS_PER_NODE}"):
        NodeConfig(engine="sim", models=many)
    NodeConfig(engine="sim", models=many[:MAX_MODELS_PER_NODE])


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = NodeConfig(
        engine="sim",
        models=["gemma-3-270m", "mine=/models/m.gguf"],
        port=8900,
        region="eu-west",
        sim_failure_rate=0.1,
        memory_budget_bytes=8 << 30,
        availability_hours="22:00-07:00",
    )
    path = tmp_path / "dir" / "node.toml"
    save_node_config(cfg, path)
    assert load_node_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["node.toml"]  # no temp file left
    assert 'engine = "sim"' in path.read_text()


def test_load_rejects_unknown_keys_and_bad_toml(tmp_path: Path) -> None:
    p = tmp_path / "node.toml"
    p.write_text('engine = "sim"\ncolour = "blue"\n')
    with pytest.raises(ValueError, match="colour"):
        load_node_config(p)
    p.write_text("engine = \n")
    with pytest.raises(ValueError, match="TOML"):
        load_node_config(p)
    p.write_text('engine = "sim"\nmodels = "gemma-3-270m"\n')
    assert load_node_config(p).models == ["gemma-3-270m"]


def test_node_id_is_derived_from_the_key_made_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from LLM_Mesh.node.service import node_identity

    s = Settings(home=tmp_path / "home")
    with caplog.at_level("INFO", logger="LLM_Mesh.node"):
        first = node_identity(NodeConfig(), s)
        again = node_identity(NodeConfig(), s)
    said = [r.getMessage() for r in caplog.records if "made this node's key" in r.getMessage()]
    assert len(said) == 1 and first.node_id in said[0]  # said once, on the start that made it
    assert first.created and first.node_id.startswith("node-")
    assert (tmp_path / "home" / "node.key").stat().st_mode & 0o777 == 0o600
    assert not again.created and again.node_id == first.node_id
    # an old, made-up node_id in node.toml does not change the id
    assert node_identity(NodeConfig(node_id="mine"), s).node_id == first.node_id
    other = node_identity(NodeConfig(key_file=str(tmp_path / "other.key")), s)
    assert other.node_id != first.node_id


def test_hours() -> None:
    assert parse_hours("09:00-17:30") == (540, 1050)
    assert within_hours(None, 0)
    assert within_hours("09:00-17:00", 9 * 60)
    assert not within_hours("09:00-17:00", 17 * 60)
    assert within_hours("22:00-07:00", 23 * 60) and within_hours("22:00-07:00", 60)
    assert not within_hours("22:00-07:00", 12 * 60)
    with pytest.raises(ValueError):
        parse_hours("25:00-26:00")


def test_registry_urls_from_node_toml_string_or_list(tmp_path: Path) -> None:
    settings = Settings(registry_url="http://env:1")
    assert NodeConfig().effective_registry_urls(settings) == ("http://env:1",)
    cfg = NodeConfig(registry_url="http://a:1,http://b:2/")
    assert cfg.effective_registry_urls(settings) == ("http://a:1", "http://b:2")
    assert cfg.effective_registry_url(settings) == "http://a:1"
    path = tmp_path / "node.toml"
    path.write_text('registry_url = ["http://a:1", "http://b:2"]\n')
    loaded = load_node_config(path)
    assert loaded.effective_registry_urls(settings) == ("http://a:1", "http://b:2")


@pytest.mark.parametrize("key", ["operator_token", "upstream_api_key"])
def test_a_node_toml_holding_a_credential_that_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    """A hand-written node.toml (0644 under the usual umask) with the operator token: any
    user of the machine can read it and register nodes as that operator (found 2026-12-03:
    the node started without a word; node.key's mode was already checked)."""
    import logging
    import os

    path = tmp_path / "node.toml"
    path.write_text(f'engine = "sim"\nmodels = ["m"]\n{key} = "lmo_x"\n', encoding="utf-8")
    os.chmod(path, 0o644)
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.node")
    load_node_config(path)
    said = [r.getMessage() for r in caplog.records if r.name == "LLM_Mesh.node"]
    assert any(key in m and "chmod 600" in m and "lmo_x" not in m for m in said), said
    caplog.clear()
    os.chmod(path, 0o600)  # the owner's only: nothing to say
    load_node_config(path)
    assert not [r for r in caplog.records if r.name == "LLM_Mesh.node"]
    path.write_text('engine = "sim"\nmodels = ["m"]\n', encoding="utf-8")
    os.chmod(path, 0o644)  # no credential in it: readable is fine
    load_node_config(path)
    assert not [r for r in caplog.records if r.name == "LLM_Mesh.node"]


def test_stream_interval_from_node_toml_else_env_else_the_default(tmp_path: Path) -> None:
    """``stream_interval_s``: node.toml (or ``--stream-interval-s``) wins over
    ``LLM_MESH_STREAM_INTERVAL_S``; neither: DEFAULT_STREAM_INTERVAL_S; 0 to 1 second."""
    from LLM_Mesh.node.config import DEFAULT_STREAM_INTERVAL_S

    plain, env = Settings(), Settings.from_env({"LLM_MESH_STREAM_INTERVAL_S": "0.04"})
    assert plain.stream_interval_s is None and env.stream_interval_s == 0.04
    assert NodeConfig().effective_stream_interval_s(plain) == DEFAULT_STREAM_INTERVAL_S
    assert NodeConfig().effective_stream_interval_s(env) == 0.04
    assert NodeConfig(stream_interval_s=0).effective_stream_interval_s(env) == 0
    p = tmp_path / "node.toml"
    p.write_text('engine = "sim"\nmodels = ["m"]\nstream_interval_s = 0.02\n')
    assert load_node_config(p).effective_stream_interval_s(env) == 0.02
    p.write_text('engine = "sim"\nmodels = ["m"]\nstream_interval_s = 0\n')  # a whole number
    assert load_node_config(p).stream_interval_s == 0
    for bad in (-0.01, 1.5):
        with pytest.raises(ValueError, match="stream_interval_s"):
            NodeConfig(stream_interval_s=bad)
    for raw in ("-1", "2", "nan", "soon"):
        with pytest.raises(ValueError, match="LLM_MESH_STREAM_INTERVAL_S"):
            Settings.from_env({"LLM_MESH_STREAM_INTERVAL_S": raw})
    assert Settings.from_env({"LLM_MESH_STREAM_INTERVAL_S": "0"}).stream_interval_s == 0.0
