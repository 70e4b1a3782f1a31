"""bench/sparse_needle.py builds what it claims: needles planted whole at
sentence starts, and questions that end in the assistant turn, plain or
opening with the answer's first words (RULER's prefix)."""
from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

from sparse_support import smollm_gguf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def needle_bench():
    sys.path.insert(0, str(ROOT / "bench"))      # sparse_needle imports sparse_common
    try:
        spec = importlib.util.spec_from_file_location("sparse_needle",
                                                      ROOT / "bench" / "sparse_needle.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["sparse_needle"] = module        # its dataclasses look themselves up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("sparse_needle", None)
        sys.path.remove(str(ROOT / "bench"))


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    path = smollm_gguf()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def test_questions_end_in_the_assistant_turn_plain_or_with_the_answer_prefix(needle_bench,
                                                                              tok):
    plain = tok.decode(needle_bench.needle_question(tok, "Lisbon", "plain"))
    prefix = tok.decode(needle_bench.needle_question(tok, "Lisbon", "prefix"))
    assert "What is the special magic number for Lisbon?" in plain
    assert plain.endswith("<|im_start|>assistant\n")
    assert prefix == plain + "The special magic number for Lisbon is"
    with pytest.raises(ValueError, match="unknown needle prompt"):
        needle_bench.needle_question(tok, "Lisbon", "shouted")


def test_needles_are_planted_whole_at_sentence_starts(needle_bench, tok):
    body = tok(" ".join(f"Sentence {i} says nothing at all." for i in range(400)),
               add_special_tokens=False).input_ids
    doc, needles = needle_bench.build_document(tok, body, 2000, 5, random.Random(7))
    assert len(doc) <= 2000 and len(needles) == 5
    text = tok.decode(doc)
    at = [text.index(f"The special magic number for {n.city} is {n.number}.") for n in needles]
    assert at == sorted(at)                          # in order, spread through the document
    assert at[0] > len(text) // 10 and at[-1] < len(text) * 9 // 10
    for i in at:
        assert text[:i].rstrip().endswith(".")       # after a sentence, never inside one
    assert len({n.number for n in needles}) == 5
