"""May a node learn its gateway key from a first answer (``core/first_use.py``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.first_use import (
    PRINT_KEY_COMMAND,
    FirstUse,
    decide_first_use,
    exposed_urls,
    loopback_host,
    opted_in_warning,
    refusal,
)

LOOPBACK = [
    "http://127.0.0.1:8800",
    "http://127.5.6.7:8800",
    "http://[::1]:8800",
    "http://localhost:8800",
    "http://LOCALHOST.:8800/",
    "http://[::ffff:127.0.0.1]:8800",
]
EXPOSED = [
    "http://10.0.0.5:8800",
    "http://192.168.1.2",
    "http://mesh.example.org:8800",
    "http://localhost.example.org",  # a name, not localhost
    "http://127.example:8800",
    "http://0.0.0.0:8800",
    "http://[fe80::1]:8800",
    "ftp://mesh.example.org",  # not https: no TLS
    "mesh.example.org:8800",  # no scheme
    "http://[::1",  # unparsable
]


@pytest.mark.parametrize("url", LOOPBACK)
def test_loopback_registries_are_safe(url: str) -> None:
    assert exposed_urls([url]) == ()
    assert decide_first_use([url], pinned=False, allowed=False).verdict is FirstUse.SAFE


@pytest.mark.parametrize("url", EXPOSED)
def test_plain_http_to_another_host_is_refused_without_a_pin(url: str) -> None:
    decision = decide_first_use([url], pinned=False, allowed=False)
    assert decision.verdict is FirstUse.REFUSED
    assert decision.exposed == (url,)


@pytest.mark.parametrize("url", ["https://mesh.example.org", "HTTPS://10.0.0.5:8443"])
def test_https_is_safe(url: str) -> None:
    assert decide_first_use([url], pinned=False, allowed=False).verdict is FirstUse.SAFE


def test_one_exposed_url_among_replicas_is_enough() -> None:
    urls = ["https://a.example.org", "http://127.0.0.1:8800", "http://b.example.org"]
    decision = decide_first_use(urls, pinned=False, allowed=False)
    assert decision == decide_first_use(urls[::-1], pinned=False, allowed=False)
    assert decision.verdict is FirstUse.REFUSED
    assert decision.exposed == ("http://b.example.org",)


def test_a_pin_or_the_opt_in_lets_it_start() -> None:
    urls = ["http://10.0.0.5:8800"]
    assert decide_first_use(urls, pinned=True, allowed=False).verdict is FirstUse.PINNED
    assert decide_first_use(urls, pinned=True, allowed=True).verdict is FirstUse.PINNED
    opted = decide_first_use(urls, pinned=False, allowed=True)
    assert opted.verdict is FirstUse.OPTED_IN and opted.exposed == tuple(urls)
    safe = decide_first_use(["https://x.org"], pinned=False, allowed=True)
    assert safe.verdict is FirstUse.SAFE  # nothing to opt in to: no warning


def test_loopback_host() -> None:
    assert loopback_host("127.0.0.1") and loopback_host("[::1]") and loopback_host("localhost")
    assert not loopback_host(None) and not loopback_host("") and not loopback_host("10.0.0.1")
    assert not loopback_host("localhost.example.org")


def test_the_refusal_says_how_to_fix_it() -> None:
    text = refusal(("http://10.0.0.5:8800",))
    assert "http://10.0.0.5:8800" in text
    assert "https" in text and PRINT_KEY_COMMAND in text and "registry_public_key" in text
    assert "allow_http_first_use" in text and "LLM_MESH_ALLOW_HTTP_FIRST_USE" in text
    many = refusal(tuple(f"http://h{i}.org" for i in range(6)))
    assert "http://h3.org" in many and "http://h4.org" not in many and "2 more" in many
    warned = opted_in_warning(("http://10.0.0.5:8800",))
    assert "http://10.0.0.5:8800" in warned and PRINT_KEY_COMMAND in warned


def test_a_host_around_localhost_is_another_host() -> None:
    assert loopback_host("LOCALHOST") and loopback_host("[::1]")
    assert not loopback_host("localhostX") and not loopback_host("Xlocalhost")


def test_every_url_is_judged_after_an_unparsable_or_a_safe_one() -> None:
    assert exposed_urls(["http://[::1", "http://b.example.org"]) == (
        "http://[::1",
        "http://b.example.org",
    )
    assert exposed_urls(["https://a.example.org", "http://b.example.org"]) == (
        "http://b.example.org",
    )
    assert exposed_urls([" http://127.0.0.1:8800 "]) == ()  # white space around a URL


def test_a_pinned_node_still_learns_which_urls_are_exposed() -> None:
    decision = decide_first_use(["http://10.0.0.5:8800"], pinned=True, allowed=False)
    assert decision.exposed == ("http://10.0.0.5:8800",)
    assert decide_first_use(["https://x.org"], pinned=False, allowed=False).exposed == ()


REFUSAL_AFTER_URLS = (
    " is plain http to another machine and this node has no pinned gateway key: it would "
    "pin the key of the first registration answer for good, and anyone on the network path "
    "can answer with their own. Fix one of: (1) use https for the registry (registry_url = "
    '"https://..."; the registry serves it with registry serve --tls-cert/--tls-key); '
    "(2) pin the registry's key: run `llm-mesh registry public-key` on the registry's "
    'machine and put registry_public_key = "<its output>" in node.toml (or pass '
    "--registry-public-key to llm-mesh node start); (3) on a network you trust, accept the "
    "first answer's key anyway: allow_http_first_use = true in node.toml, "
    "--allow-http-first-use, or LLM_MESH_ALLOW_HTTP_FIRST_USE=1"
)


def test_the_refusal_and_the_warning_word_for_word() -> None:
    assert refusal(("http://10.0.0.5:8800",)) == (
        "registry URL http://10.0.0.5:8800" + REFUSAL_AFTER_URLS
    )
    assert opted_in_warning(("http://10.0.0.5:8800", "http://b.org")) == (
        "allow_http_first_use: this node will pin the gateway key of the first registration "
        "answer from http://10.0.0.5:8800, http://b.org, plain http to another machine: "
        "anyone on the network path can answer with their own key. Pin registry_public_key "
        "(`llm-mesh registry public-key` on the registry's machine prints it) or use https"
    )


def test_up_to_four_urls_are_listed_each_cut_at_200_characters() -> None:
    four = tuple(f"http://h{i}.org" for i in range(4))
    assert refusal(four) == (
        "registry URL http://h0.org, http://h1.org, http://h2.org, http://h3.org"
        + REFUSAL_AFTER_URLS
    )
    assert refusal((*four, "http://h4.org")).startswith(
        "registry URL http://h0.org, http://h1.org, http://h2.org, http://h3.org (and 1 more)"
        " is plain http"
    )
    long = "http://" + "a" * 300
    assert refusal((long,)) == "registry URL " + long[:200] + REFUSAL_AFTER_URLS
