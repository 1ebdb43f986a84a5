"""review35: a node that may keep prompts, held out of the slots an anonymous request that
did not opt in may use (review33c, ``Router.slots(held_out=True)``), still had its word on
keyed requests (``Heartbeat.keyed_age_s``) read as the model's keyed demand
(``Routing.keyed_at``), so on a one-slot model it took an honest node's slot from every
such request, as a quarantined node did before attack31. docs/security.md, "Users and API
keys"."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, chat
from tests.registry.test_keyed_replicas import _beat


async def test_a_prompt_keepers_keyed_word_keeps_no_slot_from_requests_that_did_not_opt_in(
    tmp_path: Path,
) -> None:
    """A node that may keep prompts (``keeps_no_prompts: false``: no request that did not
    opt in goes there, none of its slots is counted for one) says in every heartbeat that a
    keyed request just came: the model's one slot such a request may use, an honest node's
    that had no keyed request, stays lent to anonymous requests (found 2026-12-06,
    review35: every anonymous request for the model was refused 429 for as long as it
    kept saying so). A request that opted in may use the keeper's slot: its word counts
    there."""
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("keeper", max_concurrency=1, max_queue=0, keeps_no_prompts=False)
        honest = await h.register("honest", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        assert routing.slots(MODEL) == 1  # the honest node's slot alone
        await _beat(h, "keeper", keyed_age_s=0.0)
        assert routing.keyed_at(MODEL) is None  # before the fix: the keeper's word
        assert routing.keyed_at(MODEL, allowed=True) is not None  # it holds a slot there
        r = await h.client.post(CHAT, json=chat("anonymous, no key about"))
        assert r.status_code == 200, r.text  # before the fix: 429
        assert honest.calls
