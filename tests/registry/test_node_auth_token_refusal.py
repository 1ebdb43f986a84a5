"""The registry signs every registration's 401 for an operator token it does not know (or
none), with the key nodes pin, over that very registration, in its own domain
(``node_auth.token_refusal_signed``, ``core/revocation_proof.py``): found 2026-12-05
(signed401), the 401 was unsigned, so a node that knows the registry key could not stop on it
(a forged one would stop it for good) and retried an unknown token for ever."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.core.identity import MessageKind, hash_secret
from LLM_Mesh.core.revocation_proof import check_revocation, revoked_request
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, error, make_node, mesh, operator
from tests.registry.test_node_auth_revocation import _register


async def test_an_unknown_tokens_401_is_signed_over_that_registration(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    await operator(store)
    node = make_node(wall, "lmo_not_made_here")
    async with await mesh(tmp_path, store, wall) as h:
        r, sent = await _register(h, node)
        error(r, 401, "invalid_credential")
        said = r.json()
        assert said["error"]["message"].startswith("unknown operator token")
        key = h.runtime.signer.public_key
        request = revoked_request(MessageKind.REGISTER, sent)
        assert request is not None
        assert check_revocation(key, request, said, token=True) is None, r.text  # before: unsigned
        # not a revocation, and not another registration's refusal (later, another token)
        assert check_revocation(key, request, said) is not None
        later = revoked_request(MessageKind.REGISTER, {**sent, "X-Mesh-Seq": str(request.seq + 1)})
        assert later is not None and check_revocation(key, later, said, token=True) is not None
        other = revoked_request(MessageKind.REGISTER, {**sent, "X-Mesh-Operator-Token": "lmo_x"})
        assert other is not None and check_revocation(key, other, said, token=True) is not None


async def test_a_registration_without_a_token_is_signed_too(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, None)
    async with await mesh(tmp_path, store, wall) as h:
        r, sent = await _register(h, node)
        error(r, 401, "invalid_credential")
        request = revoked_request(MessageKind.REGISTER, sent)
        assert request is not None and request.token_sha256 == ""
        key = h.runtime.signer.public_key
        assert check_revocation(key, request, r.json(), token=True) is None, r.text


async def test_a_swapped_token_is_not_signed(tmp_path: Path) -> None:
    """The 401 for a token other than the one the registration was signed with (a relay
    swapped it, attack32b) is no word about the node's token: it carries no signature."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    node = make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        body = node.body(operator_token_sha256=hash_secret(token))  # as a node signs it
        sent = {**node.reg_headers(body), "X-Mesh-Operator-Token": "lmo_swapped"}
        r = await h.client.post("/mesh/nodes", content=body, headers=sent)
        error(r, 401, "invalid_credential")
        assert "replaced on the way" in r.json()["error"]["message"]
        assert "token_refusal" not in r.json()["error"]
