"""Which model files a canary verifier is marked for (``core/verifier_marks.py``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.verifier_marks import chosen_marks, covers, unmarked_text

A, B = "a" * 64, "b" * 64
SERVED = [
    {"id": "m", "engine": "llama-cpp", "sha256": A},
    {"id": "m2", "engine": "llama-cpp", "sha256": B.upper()},
    {"id": "unhashed", "engine": "sim", "sha256": None},
]


def test_a_mark_covers_its_model_and_file_only() -> None:
    marks = {"m": A}
    assert covers(marks, "m", A) and covers(marks, "m", A.upper())
    assert not covers(marks, "m", B)  # another file under the checked name
    assert not covers(marks, "other", A)  # a model it was not marked for
    assert not covers(marks, "m", None) and not covers(marks, "m", "")
    assert not covers({}, "m", A) and not covers(None, "m", A)  # a mark before 0034


def test_trust_marks_what_the_node_serves_with_a_sha256_by_default() -> None:
    assert chosen_marks("n", SERVED, []) == {"m": A, "m2": B}
    assert chosen_marks("n", SERVED, ["m2"]) == {"m2": B}


def test_trust_refuses_a_model_the_node_does_not_serve_hashed() -> None:
    with pytest.raises(ValueError, match=r"does not serve other, unhashed .*\(it does: m, m2\)"):
        chosen_marks("n", SERVED, ["m", "other", "unhashed"])
    with pytest.raises(ValueError, match="node n serves no model with a declared sha256"):
        chosen_marks("n", SERVED[2:], [])
    with pytest.raises(ValueError, match=r"\(it does: none\)"):
        chosen_marks("n", ["junk", {"id": 3}], ["m"])


def test_an_old_mark_is_said_to_cover_nothing_and_how_to_mend_it() -> None:
    text = unmarked_text("v1")
    assert "reference for no model" in text and "llm-mesh registry nodes trust v1" in text
