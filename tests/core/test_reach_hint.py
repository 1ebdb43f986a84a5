"""core/reach_hint.py: the fix named for a registry URL that reaches a server spoken to wrongly."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.reach_hint import reach_hint

# the errors seen walking docs/deploy.md (2026-12-03), as httpx worded them
PLAIN_TO_TLS = "Server disconnected without sending a response."
UNTRUSTED = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
    "issuer certificate (_ssl.c:1006)"
)


def test_plain_http_to_an_https_replica_says_https() -> None:
    hint = reach_hint("http://10.0.0.11:8800", PLAIN_TO_TLS)
    assert hint is not None and "https://" in hint and "--tls-cert" in hint


def test_an_untrusted_certificate_names_the_ca_option() -> None:
    hint = reach_hint("https://10.0.0.11:8800", UNTRUSTED)
    assert hint is not None and "--registry-ca" in hint and "LLM_MESH_REGISTRY_CA" in hint


@pytest.mark.parametrize(
    "said", ["[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
             "[SSL] record layer failure (_ssl.c:1000)"],
)  # fmt: skip
def test_tls_to_a_plain_http_server_says_http(said: str) -> None:
    hint = reach_hint("https://10.0.0.11:8800", said)
    assert hint is not None and "http://" in hint


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://r1:8800", PLAIN_TO_TLS),  # already https: a server that died mid-request
        ("http://r1:8800", "All connection attempts failed"),  # nothing listening
        ("http://r1:8800", "[Errno 111] Connection refused"),
        ("r1:8800", PLAIN_TO_TLS),  # no scheme: nothing to say about it
    ],
)
def test_no_hint_where_the_scheme_is_not_the_likely_mistake(url: str, said: str) -> None:
    assert reach_hint(url, said) is None


UNTRUSTED_HINT = (
    "the TLS certificate of r1 is not trusted here (its CA is unknown): give the CA file "
    "that signed it with --registry-ca FILE or LLM_MESH_REGISTRY_CA (MeshClient(ca_file=...)), "
    "or as registry_ca in the home's node.toml (--home, LLM_MESH_HOME), which every llm-mesh "
    "command reaching a registry reads"
)


def test_each_hint_word_for_word() -> None:
    assert reach_hint("https://r1:8800", UNTRUSTED) == UNTRUSTED_HINT
    assert reach_hint("http://r1:8800", "CERTIFICATE_VERIFY_FAILED") == UNTRUSTED_HINT
    assert reach_hint("http://r1:8800", PLAIN_TO_TLS) == (
        "it closed a plain-http request unanswered: if it serves https "
        "(registry serve --tls-cert), its URL begins with https://"
    )
    assert reach_hint("https://r1:8800", "packet length too long") == (
        "it did not answer TLS: if it serves plain http, its URL begins with http://"
    )


def test_the_scheme_is_read_in_any_case_and_only_before_the_first_separator() -> None:
    assert reach_hint("HTTP://r1:8800", PLAIN_TO_TLS) is not None
    assert reach_hint("HTTPS://r1:8800", "WRONG VERSION NUMBER") is not None
    assert reach_hint("http://r1:8800/?next=https://r2", PLAIN_TO_TLS) is not None
    assert reach_hint("http", PLAIN_TO_TLS) is None  # a word, not a URL


EXPIRED = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired "
    "(_ssl.c:1006)"
)
OTHER_NAME = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
    "certificate is not valid for 'reg.example'. (_ssl.c:1006)"
)


def test_a_certificate_failure_names_the_host_and_why() -> None:
    """Found 2026-12-06 (cli36): an expired certificate or one for another name was told to
    give a CA file, which cannot help; each says its own fix, with the host."""
    expired = reach_hint("https://reg.example:8800", EXPIRED)
    assert expired is not None and "reg.example" in expired and "expired" in expired
    assert "no --registry-ca changes that" in expired
    other = reach_hint("https://10.0.0.5:8800", OTHER_NAME)
    assert other is not None and "10.0.0.5" in other and "not made for that name" in other
    untrusted = reach_hint("https://[::1]:8800", UNTRUSTED)
    assert untrusted is not None and "certificate of ::1 is not trusted" in untrusted
    assert "--registry-ca FILE or LLM_MESH_REGISTRY_CA" in untrusted


def test_node_tomls_registry_ca_is_named_with_the_commands_that_read_it() -> None:
    """Found 2026-12-06 (newuser36): ``ledger verify``, ``status`` and ``ask`` (which never
    read node.toml) were told "or registry_ca in a node's node.toml"; a user who set it
    there got the same refusal again. Since cli37 every command reaching a registry reads
    the home's (``cli/common.registry_settings``;
    ``tests/cli/test_registry_ca_node_toml.py``): the hint names which node.toml."""
    untrusted = reach_hint("https://reg.example:8800", UNTRUSTED)
    assert untrusted is not None
    assert "registry_ca in the home's node.toml (--home, LLM_MESH_HOME)" in untrusted
    assert "or registry_ca in a node's node.toml" not in untrusted
