"""The seed API's answer: :class:`ModelResponse`, a model's answer with who served it, how
fast and what it cost, read from the gateway's OpenAI answer and its ``mesh`` (whatever a
hostile gateway sent: a malformed count or amount is 0). Re-exported by
:mod:`LLM_Mesh.distributed_models`, its home in the seed API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from LLM_Mesh.core.receipt_verify import saved_form

__all__ = ["MAX_USAGE_TOKENS", "SIMULATED_MARK", "ModelResponse", "labelled_text"]

#: what ``str()`` of a simulated answer starts with: ``print(result)`` never shows a sim
#: node's made-up text as a model's answer (found 2026-12-06, newuser37: it printed the text
#: alone, with nothing saying it was made up; ``.text`` / ``.response`` stay the bare text)
SIMULATED_MARK = "[SIMULATED engine: made-up text] "


def labelled_text(text: str, simulated: bool) -> str:
    """``text`` as ``str()`` of an answer shows it: after :data:`SIMULATED_MARK` when a
    simulated node made it up, else as it is."""
    return SIMULATED_MARK + text if simulated else text


def _micro(value: Any) -> int:
    """An amount of micro-NetworkTokens from an answer's ``mesh`` (a whole number; else 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: the largest token count read from an answer's ``usage``; past it: 0
MAX_USAGE_TOKENS = 2**53


def _tokens(value: Any) -> int:
    """A token count from an answer's ``usage``: a whole number from 0 to
    :data:`MAX_USAGE_TOKENS`, else 0 (found 2026-12-03: ``int(...)`` of a hostile gateway's
    ``"many"``, ``1e400``, ``[]`` or ``None`` raised ``ValueError``/``TypeError``/
    ``OverflowError`` in the user's code)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if 0 <= value <= MAX_USAGE_TOKENS else 0


def _obj(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a hostile gateway's answer)."""
    return value if isinstance(value, Mapping) else {}


@dataclass
class ModelResponse:
    """A model's answer with who served it, how fast, and what it cost."""

    text: str
    model: str
    node_id: str | None
    task_type: str | None = None
    requested_model: str | None = None
    fallback_from: str | None = None
    engine: str | None = None
    simulated: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    cost: int = 0  # micro-NetworkTokens charged for the answer
    currency: str = "micro-NetworkToken"
    request_id: str | None = None
    # the receipt and its ids, as ``ask --save`` writes them (core/receipt_verify.saved_form)
    receipt: dict[str, Any] | None = field(default=None, repr=False)
    # where it was kept (LLM_MESH_SAVE_RECEIPTS=1 with a key), else None
    receipt_file: str | None = None

    def __str__(self) -> str:
        return labelled_text(self.text, self.simulated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_openai(
        cls, body: Mapping[str, Any], *, task_type: str | None, requested: str | None
    ) -> ModelResponse:
        choices = body.get("choices")
        choice = _obj(choices[0] if isinstance(choices, list) and choices else None)
        text = choice.get("text")
        if text is None:
            text = _obj(choice.get("message")).get("content") or ""
        mesh = _obj(body.get("mesh"))
        usage = _obj(body.get("usage"))
        model = str(mesh.get("model") or body.get("model") or requested or "")
        return cls(
            text=str(text),
            model=model,
            node_id=mesh.get("node_id"),
            task_type=task_type,
            requested_model=requested,
            engine=mesh.get("engine"),
            simulated=bool(mesh.get("simulated", False)),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=_tokens(usage.get("prompt_tokens")),
            completion_tokens=_tokens(usage.get("completion_tokens")),
            latency_ms=mesh.get("latency_ms"),
            ttft_ms=mesh.get("ttft_ms"),
            tokens_per_s=mesh.get("tokens_per_s"),
            cost=_micro(mesh.get("cost")),
            request_id=mesh.get("request_id"),
            receipt=saved_form(dict(mesh)),
        )
