"""docs/security.md, "Privacy": an engine's exception that quotes the request (llama-cpp-python's
``RuntimeError('Failed to tokenize: text="b\\'<the whole prompt>\\'" n_tokens=-5')``, a
``KeyError``, ``int()``'s "invalid literal") is logged without what it quotes: the node's log
never holds the prompt (or the output), while the operator still reads what failed."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.node.engines.base import CancelFlag, Delta, Engine, GenerationRequest
from tests.node.conftest import MODEL, asgi_client, started_service


def _tokenize(text: str) -> Exception:  # llama_cpp/_internals.py, LlamaModel.tokenize
    return RuntimeError(f'Failed to tokenize: text="{text.encode()!r}" n_tokens=-5')


def _invalid_literal(text: str) -> Exception:
    try:
        int(text)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


RAISES: list[Callable[[str], Exception]] = [_tokenize, _invalid_literal, KeyError]


class _Quoting(Engine):
    """An engine whose exception quotes the prompt, before or after its first token."""

    name = "llama-cpp"

    def __init__(self, make: Callable[[str], Exception], after_first: bool) -> None:
        self.make = make
        self.after_first = after_first

    def models(self) -> list[HostedModel]:
        return [HostedModel(id=MODEL, engine=self.name, context_length=4096)]

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        said = " ".join(str(m["content"]) for m in req.messages or [])
        if self.after_first:
            yield Delta("a")
        raise self.make(said)


@pytest.mark.parametrize("after_first", [False, True], ids=["at_start", "after_first_token"])
@pytest.mark.parametrize("make", RAISES, ids=["llama_tokenize", "invalid_literal", "key_error"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_engine_exception_quoting_the_prompt_is_logged_without_it(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[str], Exception],
    stream: bool,
    after_first: bool,
) -> None:
    marker = f"PRIVACY-{secrets.token_hex(8)}"
    caplog.set_level(logging.DEBUG)
    svc = await started_service(settings, _Quoting(make, after_first))
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"my secret {marker}"}],
            "max_tokens": 5, "stream": stream}  # fmt: skip
    try:
        async with asgi_client(svc) as c:
            r = await c.post("/v1/chat/completions", json=body)
        assert "engine_error" in r.text, r.text
        assert marker not in r.text
        failed = [rec for rec in caplog.records if "engine failed" in rec.getMessage()]
        assert failed, [rec.getMessage() for rec in caplog.records]
        assert type(make(marker)).__name__ in failed[0].getMessage()  # what failed, still
        for rec in caplog.records:
            assert marker not in rec.getMessage(), rec.getMessage()
    finally:
        await svc.stop()


async def test_an_unexpected_error_quoting_the_output_is_logged_without_it(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the node's own code after the engine (here: the answer's body made to raise
    with the output in its words) is a 500 ``engine_error`` logged with its type and frames,
    not what it quotes (found 2026-12-04: it left the app, and uvicorn logged its whole
    message and traceback at ERROR)."""
    from LLM_Mesh.node import responses
    from LLM_Mesh.node.engines.sim import SimEngine

    def broken(**kw: object) -> None:
        raise ValueError(f"bad answer text {kw['text']!r}")

    monkeypatch.setattr(responses, "answer_body", broken)
    caplog.set_level(logging.DEBUG)
    svc = await started_service(settings, SimEngine(models=[MODEL]))
    marker = f"PRIVACY-{secrets.token_hex(8)}"
    body = {"model": MODEL, "prompt": f"echo {marker}", "echo": True, "max_tokens": 2}
    try:
        async with asgi_client(svc) as c:
            r = await c.post("/v1/completions", json=body)
        assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error", r.text
        assert marker not in r.text
        failed = [rec.getMessage() for rec in caplog.records if "ValueError" in rec.getMessage()]
        assert failed and "broken" in failed[0]  # the frames, for the operator
        for rec in caplog.records:
            assert marker not in rec.getMessage(), rec.getMessage()
    finally:
        await svc.stop()
