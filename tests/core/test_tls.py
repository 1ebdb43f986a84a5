"""Certificate fingerprints: spellings accepted, the one canonical form, and the registry's
transport rule (``--require-tls``; plain http only on loopback unless the registry allows it,
``--allow-plain-http-nodes``; a fingerprint only for an https URL)."""

from __future__ import annotations

import hashlib

import pytest

from LLM_Mesh.core.tls import (
    NodeTransport,
    fingerprint_of_der,
    loopback_url,
    node_tls_refusal,
    parse_fingerprint,
    show_fingerprint,
)

HEX = hashlib.sha256(b"cert").hexdigest()


@pytest.mark.parametrize(
    "text",
    [HEX, HEX.upper(), "sha256:" + HEX, show_fingerprint(HEX), "  " + HEX + "\n"],
)
def test_spellings_parse_to_lower_hex(text: str) -> None:
    assert parse_fingerprint(text) == HEX


@pytest.mark.parametrize("text", ["", "abc", HEX[:-2], HEX + "00", "zz" * 32, "sha1:" + HEX])
def test_not_a_sha256_digest(text: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        parse_fingerprint(text)


def test_show_is_openssl_style() -> None:
    shown = show_fingerprint(HEX)
    assert len(shown) == 95 and shown.count(":") == 31 and shown == shown.upper()


def test_fingerprint_of_der() -> None:
    assert fingerprint_of_der(b"cert") == HEX


@pytest.mark.parametrize(
    ("url", "fp", "require", "allow", "reason"),
    [
        ("http://n:1", None, False, True, None),  # the opt-out (a lab)
        ("http://n:1", None, False, False, "plain_http_remote"),  # the default
        ("http://n:1", None, True, False, "plain_http"),
        ("HTTP://n:1", None, True, False, "plain_http"),
        ("https://n:1", None, True, False, None),
        ("https://n:1", HEX, True, False, None),
        ("https://n:1", None, False, False, None),
        ("http://n:1", HEX, False, True, "fingerprint_without_tls"),
        ("http://127.0.0.1:1", HEX, False, False, "fingerprint_without_tls"),
        ("http://127.0.0.1:8801", None, False, False, None),  # loopback: http is fine
        ("http://127.0.0.1:8801", None, True, False, "plain_http"),  # ... unless TLS required
    ],
)
def test_node_tls_refusal(
    url: str, fp: str | None, require: bool, allow: bool, reason: str | None
) -> None:
    assert node_tls_refusal(url, fp, require_tls=require, allow_plain_http=allow) == reason
    rule = NodeTransport(require_tls=require, allow_plain_http=allow)
    assert rule.refusal(url, fp) == reason


def test_plain_http_off_loopback_is_refused_by_default() -> None:
    """Found 2026-12-04: a registry accepted a node at ``http://`` on any host unless started
    with ``--require-tls``, so prompts and answers crossed the network in clear by default."""
    assert node_tls_refusal("http://10.0.0.5:8801", None, require_tls=False) == "plain_http_remote"
    assert NodeTransport().refusal("http://node.example:8801") == "plain_http_remote"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8801",
        "http://127.0.0.1",
        "http://127.8.9.10:1/v1",
        "http://[::1]:8801",
        "http://[::ffff:127.0.0.1]:8801",
        "http://localhost:8801",
        "http://LOCALHOST:8801",
        "https://localhost:8801",
        "http://2130706433:8801",  # 127.0.0.1 as inet_aton reads it (address_pins refuses it)
    ],
)
def test_loopback_urls(url: str) -> None:
    assert loopback_url(url)
    assert NodeTransport().refusal(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8801",
        "http://192.168.1.20:8801",
        "http://8.8.8.8:8801",
        "http://[2001:db8::1]:8801",
        "http://[::]:8801",
        "http://0.0.0.0:8801",
        "http://node-a:8801",
        "http://node.example.com:8801",
        "http://localhost.example.com:8801",  # a name that only starts like it
        "http://127.0.0.1.nip.io:8801",  # a name, resolved elsewhere: not an address
        "http://evil-localhost:8801",
        "http://user@127.0.0.1:8801",  # userinfo: not a node URL
        "not a url",
    ],
)
def test_not_loopback_urls(url: str) -> None:
    assert not loopback_url(url)
    assert NodeTransport().refusal(url) == "plain_http_remote"
    assert NodeTransport(allow_plain_http=True).refusal(url) is None


def test_an_origin_named_one_by_one_may_be_plain_http() -> None:
    """``--allow-private-node http://10.0.0.5:8801``: the operator named that origin, so it is
    accepted in plain http without the global opt-out (``LocalMesh`` on a LAN address names its
    own node so); any other origin, and https-only registries, still refuse."""
    rule = NodeTransport.naming(False, False, ("http://10.0.0.5:8801/", "https://n.example"))
    assert rule.plain_http_origins == frozenset({"http://10.0.0.5:8801"})
    assert rule.refusal("http://10.0.0.5:8801") is None
    assert rule.refusal("http://10.0.0.5:8801/v1") is None  # the same origin
    assert rule.refusal("http://10.0.0.5:8802") == "plain_http_remote"  # another port
    assert rule.refusal("http://10.0.0.6:8801") == "plain_http_remote"
    assert rule.refusal("http://n.example:443") == "plain_http_remote"  # named as https only
    strict = NodeTransport.naming(True, False, ("http://10.0.0.5:8801",))
    assert strict.refusal("http://10.0.0.5:8801") == "plain_http"  # --require-tls wins
    assert NodeTransport.naming(False, False, ("http://bad host",)).plain_http_origins == set()


def test_a_name_is_loopback_only_by_its_resolved_addresses() -> None:
    """Found 2026-12-04: ``localhost`` was loopback by its spelling; with the addresses the
    registry resolved, a name is loopback only if they all are."""
    assert loopback_url("http://localhost:8801", ["127.0.0.1", "::1"])
    assert not loopback_url("http://localhost:8801", ["10.0.0.7"])
    assert not loopback_url("http://localhost:8801", ["127.0.0.1", "10.0.0.7"])
    assert not loopback_url("http://localhost:8801", [])
    assert not loopback_url("http://127.0.0.1.evil.example:8801")
    assert not loopback_url("http://127.0.0.1.evil.example:8801", ["93.184.216.34"])
    assert loopback_url("http://[::1]:8801", ["::1"]) and loopback_url("http://[::1]:8801")
    assert loopback_url("http://[::ffff:127.0.0.1]:8801")


def test_a_bad_fingerprint_is_refused_in_words() -> None:
    with pytest.raises(ValueError) as refused:
        parse_fingerprint("sha256:" + HEX[:-2])
    assert str(refused.value) == (
        "a TLS fingerprint is a SHA-256 digest: 64 hex digits (pairs may be :-joined)"
    )


def test_a_resolved_address_that_is_no_address_is_not_loopback() -> None:
    assert not loopback_url("http://localhost:8801", ["not-an-address"])
    assert not loopback_url("http://localhost:8801", ["127.0.0.1", "not-an-address"])
    assert loopback_url("http://localhost:8801", ["::1%lo", "::ffff:127.0.0.2"])  # zone, mapped


def test_the_refusal_judges_a_name_by_its_resolved_addresses() -> None:
    """The registry passes what it resolved the host to: a name on loopback addresses alone
    may serve plain http; ``localhost`` pointed elsewhere may not."""
    assert node_tls_refusal("http://node-a:8801", None, require_tls=False) == "plain_http_remote"
    assert (
        node_tls_refusal("http://node-a:8801", None, require_tls=False, addresses=["127.0.0.1"])
        is None
    )
    assert (
        node_tls_refusal("http://localhost:8801", None, require_tls=False, addresses=["10.0.0.7"])
        == "plain_http_remote"
    )
    rule = NodeTransport()
    assert rule.refusal("http://node-a:8801", addresses=["::1"]) is None
    assert rule.refusal("http://localhost:8801", addresses=["10.0.0.7"]) == "plain_http_remote"
    assert rule.refusal("http://localhost:8801") is None  # no addresses: by its name


def test_naming_keeps_the_global_plain_http_opt_out() -> None:
    rule = NodeTransport.naming(False, True, ())
    assert rule.allow_plain_http is True and rule.require_tls is False
    assert rule.refusal("http://10.0.0.6:8801") is None
    assert NodeTransport.naming(True, False, ()).require_tls is True
