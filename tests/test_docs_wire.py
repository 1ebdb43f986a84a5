"""What the mesh puts on the wire or in a shared store is named where an operator or a peer
reads it: every ``X-Mesh-*`` header the package writes is in docs/ARCHITECTURE.md (the
protocol's description), every Redis key prefix it writes is in docs/deploy.md (what Redis
holds, what to back up).

Walked on 2026-12-06 (docs36): redisshare36 added ``llm-mesh:shown:`` (each replica's hash of
the slots its nodes have shown, published every 2 s) and docs/deploy.md still said Redis held
rate-limit buckets and in-flight places only, and that each replica counts a node's slots as
it alone saw them. A header is named whole (``X-Mesh-Prompt-Signature``) or, beside its
family's first, by its last part (``X-Mesh-Health-Registry``, then ``-Node``). The other way,
every ``X-Mesh-*`` the docs name is one the package writes or reads (a renamed header's old
name is caught), or one an attacker sends (listed).
"""

from __future__ import annotations

import re

from tests.test_docs_names import REPO

PACKAGE = REPO / "LLM_Mesh"
_HEADER = re.compile(r"[\"'](X-Mesh-[A-Za-z0-9-]*[A-Za-z0-9])[\"']")
# headers the docs name that the package never writes: what an attacker sends (security.md)
NOT_OURS = {"X-Mesh-Priority"}  # "claim priority as a client: ... an `X-Mesh-Priority` header"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_REDIS_PREFIX = re.compile(r"[\"'](llm-mesh:[a-z-]+:)[\"']")


def _literals(pattern: re.Pattern[str]) -> set[str]:
    """The strings ``pattern`` finds quoted in the package's source."""
    return {m for p in PACKAGE.rglob("*.py") for m in pattern.findall(p.read_text())}


def unnamed_headers(headers: set[str], doc: str) -> list[str]:
    """The headers ``doc`` names neither whole nor, after another of their family
    (``X-Mesh-Health-...``), by their last part in a span (`` `-Node` ``)."""
    bad = []
    for h in sorted(headers):
        if re.search(rf"{re.escape(h)}(?![\w-])", doc):
            continue
        family, _, last = h.rpartition("-")
        if f"`-{last}`" in doc and re.search(rf"{re.escape(family)}-\w", doc):
            continue
        bad.append(h)
    return bad


def test_the_checks_find_what_is_unnamed() -> None:
    doc = "`X-Mesh-Health-Registry` (...), `-Node` (...); `X-Mesh-Prompt-Tokens`"
    headers = {"X-Mesh-Health-Node", "X-Mesh-Health-Time", "X-Mesh-Prompt-Tokens"}
    headers |= {"X-Mesh-Prompt"}
    assert unnamed_headers(headers, doc) == ["X-Mesh-Health-Time", "X-Mesh-Prompt"]
    assert _HEADER.findall('HDR = "X-Mesh-Prompt-Signature"  # "X-Mesh-" + x') == [
        "X-Mesh-Prompt-Signature"
    ]
    assert _REDIS_PREFIX.findall('PREFIX = "llm-mesh:rl:"; f"llm-mesh:{x}"') == ["llm-mesh:rl:"]


def test_every_header_the_package_writes_is_in_the_protocol_description() -> None:
    headers = _literals(_HEADER)
    assert {"X-Mesh-Prompt-Signature", "X-Mesh-Receipt", "X-Mesh-Health-Nonce"} <= headers
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert unnamed_headers(headers, doc) == []


def test_every_redis_prefix_the_package_writes_is_in_the_deploy_guide() -> None:
    prefixes = _literals(_REDIS_PREFIX)
    assert {"llm-mesh:rl:", "llm-mesh:shown:"} <= prefixes
    doc = (REPO / "docs" / "deploy.md").read_text()
    assert sorted(p for p in prefixes if f"`{p}`" not in doc) == []


def test_every_header_the_docs_name_is_the_packages() -> None:
    ours = _literals(_HEADER)
    named = {h for p in DOCS for h in re.findall(r"X-Mesh-[A-Za-z0-9-]*[A-Za-z0-9]", p.read_text())}
    assert sorted(named - ours - NOT_OURS) == []
    assert not NOT_OURS & ours, "a header listed as an attacker's is the package's now"
