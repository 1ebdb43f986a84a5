"""Where the home's admin key file may go (``core/admin_key_scope.py``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.admin_key_scope import file_key_may_go, registry_origin

LOCAL = ["http://127.0.0.1:8800"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8800/", "http://127.0.0.1:8800"),
        ("HTTP://LocalHost:8800", "http://localhost:8800"),
        ("https://mesh.example", "https://mesh.example:443"),
        ("http://mesh.example./api/", "http://mesh.example:80/api"),
        ("http://[::1]:8800", "http://[::1]:8800"),
        ("http://user:pw@127.0.0.1:8800", "http://127.0.0.1:8800"),
        ("ftp://127.0.0.1:8800", None),
        ("http://127.0.0.1:99999", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_registry_origin(url: str, origin: str | None) -> None:
    assert registry_origin(url) == origin


@pytest.mark.parametrize(
    ("urls", "ok"),
    [
        (["http://127.0.0.1:8800/"], True),
        (["http://127.0.0.1:8800", "http://127.0.0.1:8800"], True),
        (["https://gateway.evil.example"], False),
        (["http://127.0.0.1:9000"], False),  # another port: an ssh tunnel, another mesh
        (["http://localhost:8800"], False),  # not what the registry recorded
        (["http://127.0.0.1:8800@evil.example"], False),
        (["http://127.0.0.1:8800", "https://gateway.evil.example"], False),  # every replica
        ([], False),
    ],
)
def test_file_key_may_go(urls: list[str], ok: bool) -> None:
    assert file_key_may_go(urls, LOCAL) is ok


def test_nothing_recorded_sends_nothing() -> None:
    assert not file_key_may_go(LOCAL, [])
    assert not file_key_may_go(LOCAL, ["garbage"])


def test_served_urls_name_the_listening_address_or_its_loopback() -> None:
    from LLM_Mesh.core.admin_key_scope import served_urls

    assert served_urls("0.0.0.0", 9000, False) == ("http://127.0.0.1:9000",)
    assert served_urls("::", 9443, True) == ("https://[::1]:9443",)
    assert served_urls("10.0.0.7", 8800, False) == ("http://10.0.0.7:8800",)
    assert served_urls("::1", 1, False) == ("http://[::1]:1",)


def test_the_recorded_registry_key_is_one_key_line() -> None:
    from LLM_Mesh.core.admin_key_scope import recorded_key

    assert recorded_key(["http://127.0.0.1:8800", "key=abc"]) == "abc"
    assert recorded_key(["http://127.0.0.1:8800"]) is None  # an older registry's record
    assert recorded_key(["key=abc", "key=def"]) is None  # two keys: neither is trusted


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://", None),  # no host
        ("http:///mesh", None),
        ("https://:8443", None),
        ("http://mesh.example/BOX/", "http://mesh.example:80/BOX"),  # the path's case kept
        ("  https://mesh.example:8443/x  ", "https://mesh.example:8443/x"),
    ],
)
def test_registry_origin_of_urls_without_a_host_or_with_a_path(
    url: str, origin: str | None
) -> None:
    assert registry_origin(url) == origin


def test_served_urls_write_the_host_in_lower_case_without_brackets_kept_twice() -> None:
    from LLM_Mesh.core.admin_key_scope import served_urls

    assert served_urls("MESHBOX", 8800, False) == ("http://meshbox:8800",)
    assert served_urls("[FD00::7]", 8800, True) == ("https://[fd00::7]:8800",)
    assert served_urls("", 8800, False) == ("http://127.0.0.1:8800",)  # every address
    assert served_urls("[::]", 8800, False) == ("http://[::1]:8800",)
