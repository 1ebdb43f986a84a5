"""Registry URLs as a user writes them (core/registry_urls.py), purely: the list split, each
``.../v1`` taken as its registry, a URL without its scheme refused in words. The CLI's and
the settings' use of it: ``tests/cli/test_registry_url_forms.py``, ``tests/test_config.py``.
Written against the module's mutants (mut33, 2026-12-06): it had no core test."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.registry_urls import registry_url_list, source_words, split_urls


def test_split_drops_blanks_around_each_url_and_every_trailing_slash() -> None:
    assert split_urls(" http://a:1/ ,http://b//,  https://c/x ") == (
        "http://a:1",
        "http://b",
        "https://c/x",
    )


def test_only_slashes_are_dropped_from_the_end() -> None:
    assert split_urls("http://MESH-X/,https://a/b:X//") == ("http://MESH-X", "https://a/b:X")


@pytest.mark.parametrize("given", ["", ",", " , ,\t", ",,,"])
def test_empty_parts_are_left_out(given: str) -> None:
    assert split_urls(given) == ()
    assert registry_url_list(given, "--registry") == ()


def test_one_url_is_one_replica_and_commas_inside_nothing_else_split() -> None:
    assert split_urls("http://a;b") == ("http://a;b",)
    assert split_urls("http://a,,http://b") == ("http://a", "http://b")


@pytest.mark.parametrize(
    ("given", "urls"),
    [
        ("http://127.0.0.1:8800/v1", ("http://127.0.0.1:8800",)),
        ("https://mesh.example.org/v1/", ("https://mesh.example.org",)),
        ("HTTPS://Mesh.example.org/v1", ("HTTPS://Mesh.example.org",)),
        ("Http://a:1", ("Http://a:1",)),
        ("http://a/v1,https://b/v2", ("http://a", "https://b/v2")),
        ("http://a/v1/v1", ("http://a/v1",)),
        ("http://a/api/v10", ("http://a/api/v10",)),
    ],
)  # fmt: skip
def test_each_openai_base_url_names_its_registry(given: str, urls: tuple[str, ...]) -> None:
    assert registry_url_list(given, "--registry") == urls


@pytest.mark.parametrize(
    ("given", "urls"),
    [
        ("http://127.0.0.1:8800/dashboard/", ("http://127.0.0.1:8800",)),
        ("http://127.0.0.1:8800/dashboard", ("http://127.0.0.1:8800",)),
        ("https://mesh.example.org/mesh/dashboard/", ("https://mesh.example.org/mesh",)),
        ("http://a/dashboards", ("http://a/dashboards",)),
    ],
)  # fmt: skip
def test_the_dashboards_url_names_its_registry(given: str, urls: tuple[str, ...]) -> None:
    """Found 2026-12-07 (newuser45): the dashboard's URL, which ``llm-mesh up`` prints, given
    as ``--registry`` made ``ask`` and ``status`` print the dashboard's HTML 404 page as the
    error (``error: HTTP 404: <!doctype html>...``)."""
    assert registry_url_list(given, "--registry") == urls


@pytest.mark.parametrize("given", ["127.0.0.1:8800", "http:/a", "httpx://a", "ftp://a"])
def test_a_url_without_http_or_https_is_refused_saying_what_to_write(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        registry_url_list(f"http://ok,{given}", "LLM_MESH_REGISTRY_URL")
    assert str(caught.value) == (
        f"LLM_MESH_REGISTRY_URL: {given!r} has no scheme: write http://{given} (or https://{given})"
    )


def test_a_long_url_is_shown_cut_to_200_characters() -> None:
    given = "h" * 150 + "0123456789" * 10
    shown = given[:200]
    with pytest.raises(ValueError) as caught:
        registry_url_list(given, "--registry")
    assert str(caught.value) == (
        f"--registry: {shown!r} has no scheme: write http://{shown} (or https://{shown})"
    )


def test_each_source_in_words() -> None:
    """Where a registry URL came from, said for each source ``Settings.registry_source``
    holds (a node.toml's ``registry_url`` not taken, said apart from 2026-12-07 until cli42,
    is no more: every command takes it)."""
    assert source_words("--registry") == "the URL came from --registry"
    assert source_words("LLM_MESH_REGISTRY_URL") == "the URL came from LLM_MESH_REGISTRY_URL"
    assert source_words("/h/node.toml") == (
        "the URL came from registry_url in /h/node.toml: change it there, or override it"
    )
    assert source_words("") == (
        "the URL is the default: no --registry, LLM_MESH_REGISTRY_URL or node.toml registry_url"
    )
