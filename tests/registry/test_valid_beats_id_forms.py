"""attack45, held: a node flooding its own valid heartbeats past its per-id bound
(``registry/valid_rates.py``, limits44) by naming itself in another form: the path's id (and
the signed target) upper-cased, with a space, in full-width letters, percent-encoded
letters. Each form is another key of the count, but a signature whose target is not its
signer is refused (``identity.verify_signed``: 403 ``node_id_mismatch``) and counted with
the failing counts (trust37: 30 a minute per address, then 30 at the node's home per id), so
the forms buy at most those 60 verifies more a minute (60 here, each 403 ``node_id_mismatch``,
then 429); percent-encoded letters are the same id once decoded (the same count)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.admin import (
    WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN,
    WRONG_BEAT_SIGNATURES_PER_MIN,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.valid_rates import beats_per_min
from tests.registry.node_auth_mesh import Wall, make_node, mesh, operator
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]

BOUND = beats_per_min(10.0)
HOME = ("192.0.2.10", 40000)  # the node's own address (loopback counts no failures)


async def test_attack_other_forms_of_its_id_buy_no_more_than_the_failing_counts(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h, _from(h.app, HOME) as c:
        node = make_node(wall, await operator(store))
        body = node.body()
        assert (
            await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
        ).status_code == 200
        nid = node.node_id

        async def send(form: str, path_id: str | None = None) -> int:
            hb = json.dumps({"in_flight": 0}).encode()
            signed = node.headers(MessageKind.HEARTBEAT, hb, target=form)
            path = f"/mesh/nodes/{path_id or quote(form, safe='')}/heartbeat"
            return (await c.post(path, content=hb, headers=signed)).status_code

        assert [await send(nid) for _ in range(BOUND + 1)] == [200] * BOUND + [429]
        before = len(verifies)
        forms = [nid.upper(), nid + " ", " " + nid, nid.replace("node", "ｎode"), nid + "\u200b"]
        forms += [f"{nid}-{i}" for i in range(100)]
        codes = [await send(form) for form in forms]
        assert set(codes) <= {400, 403, 404, 429}, codes  # 400: not printable; none 200
        bought = len(verifies) - before
        assert bought <= WRONG_BEAT_SIGNATURES_PER_MIN + WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN
        # percent-encoded letters: its own id once decoded, the same count (429, unverified)
        encoded = "".join(f"%{ord(ch):02X}" for ch in nid)
        before = len(verifies)
        assert await send(nid, encoded) == 429
        assert len(verifies) == before
