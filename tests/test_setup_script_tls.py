"""./setup-node-operator.sh and a registry on another machine: the node serves https (a
registry refuses plain-http nodes off loopback by default, ``core/tls.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.setup_script import run

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_a_registry_on_another_machine_gets_an_https_node(tmp_path: Path) -> None:
    """Found 2026-12-04: a registry refuses a plain-http node on another machine by default
    (403 ``plain_http_remote``), and the script set such nodes up as ``http://``: it makes
    the node's certificate (``node tls init``) and an https public_url now, once; a
    loopback registry keeps plain http; ``--plain-http`` (or an http public_url node.toml
    already has) keeps http, saying what it needs."""
    from LLM_Mesh.node.config import load_node_config

    sim = ("--yes", "--engine", "sim", "--models", "mistral-7b")
    remote = ("--registry", "https://10.0.0.5:8800", "--public-url", "http://203.0.113.7:8801")
    dry = run(tmp_path, *sim, *remote, "--dry-run")
    said = " ".join((dry.stdout + dry.stderr).split())
    assert "node tls init" in said and "--host 203.0.113.7" in said, said
    assert 'public_url = "https://203.0.113.7:8801"' in dry.stdout, dry.stdout
    assert not (tmp_path / "mesh").exists()  # a dry run makes nothing
    proc = run(tmp_path, *sim, *remote, "--no-start")
    assert "https, since the registry is on another machine" in " ".join(proc.stderr.split())
    mesh = tmp_path / "mesh"
    config = load_node_config(mesh / "node.toml")  # valid: https with its certificate
    assert config.public_url == "https://203.0.113.7:8801"
    assert config.tls_cert == str(mesh / "node-tls.crt")
    assert config.tls_key == str(mesh / "node-tls.key")
    cert = (mesh / "node-tls.crt").read_bytes()
    assert (mesh / "node-tls.key").stat().st_mode & 0o777 == 0o600
    again = run(tmp_path, "--yes", "--no-start")  # idempotent: same config, same certificate
    assert "unchanged" in again.stdout and "serves https" in again.stdout, again.stdout
    assert (mesh / "node-tls.crt").read_bytes() == cert
    plain = run(
        tmp_path, "--yes", "--no-start", "--plain-http", "--public-url", "http://203.0.113.7:8801"
    )
    said = " ".join(plain.stderr.split())
    assert "--allow-plain-http-nodes" in said and "plain_http_remote" in said, said
    cfg = tomllib.loads((mesh / "node.toml").read_text())
    assert cfg["public_url"] == "http://203.0.113.7:8801" and "tls_cert" not in cfg
    kept = run(tmp_path, "--yes", "--no-start")  # node.toml's URL is kept as given, and said
    assert "unchanged" in kept.stdout, kept.stdout
    assert "for https pass --public-url https://" in " ".join(kept.stderr.split())
    (tmp_path / "local").mkdir()
    local = run(tmp_path / "local", *sim, "--no-start")  # the registry on this machine
    cfg = tomllib.loads((tmp_path / "local" / "mesh" / "node.toml").read_text())
    assert cfg["public_url"] == "http://127.0.0.1:8801" and "tls_cert" not in cfg
    assert "tls" not in local.stdout and not (tmp_path / "local" / "mesh" / "node-tls.crt").exists()


def test_the_registry_is_on_loopback_by_its_parsed_host(tmp_path: Path) -> None:
    """Found 2026-12-04: the script took a registry for loopback when its URL held
    ``://127.`` or ``://localhost`` anywhere (``http://127.0.0.1.evil.example`` got a plain
    http node, refused there) and missed userinfo (``http://me@127.0.0.1``): the host is
    parsed now (userinfo, port, IPv6 brackets)."""
    sim = ("--yes", "--engine", "sim", "--models", "mistral-7b", "--dry-run")
    cases = {
        "http://127.0.0.1.evil.example:8800": "https",
        "http://localhost.evil.example:8800": "https",
        "http://me@127.0.0.1:8800": "http",
        "http://[::1]:8800": "http",
        "http://LOCALHOST:8800": "http",
        "http://[::ffff:127.0.0.1]:8800": "http",
    }
    for i, (registry, scheme) in enumerate(cases.items()):
        (tmp_path / str(i)).mkdir()
        dry = run(tmp_path / str(i), *sim, "--registry", registry)
        public = [line for line in dry.stdout.splitlines() if line.startswith("public_url")]
        assert public and f'"{scheme}://' in public[0], (registry, dry.stdout)


def test_a_lan_public_url_over_http_is_told_what_the_registry_does(tmp_path: Path) -> None:
    """A node on a LAN address over plain http (``--plain-http``) is told that the registry
    refuses it (403 ``plain_http_remote``) unless its operator opts out or names the
    node's origin with ``--allow-private-node``."""
    proc = run(
        tmp_path,
        *("--yes", "--engine", "sim", "--models", "mistral-7b", "--dry-run", "--plain-http"),
        *("--registry", "https://10.0.0.5:8800", "--public-url", "http://192.168.1.20:8801"),
    )
    said = " ".join(proc.stderr.split())
    assert "plain_http_remote" in said, said
    assert "--allow-private-node http://192.168.1.20:8801" in said, said
