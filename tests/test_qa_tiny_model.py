"""The answering pipeline with a real model: the tiny SmolLM2 GGUF.

Greedy decoding of a fixed model on a fixed prompt is deterministic, so
these assert what the model actually does with Folio's prompt and sources.
"""
from __future__ import annotations

import pytest

from engine.qa import Answerer, QAConfig, answer_once
from engine.search import HybridSearcher
from engine.select import default_pipeline
from ingest.pdf.words import WordBoxes

from test_qa import library  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_backend():
    from engine.backends import load_backend
    from engine.model_files import tiny_model_path

    try:
        path = tiny_model_path()
    except Exception as exc:   # the test extra installs it; say so when absent
        pytest.skip(f"tiny model not installed: {exc}")
    backend = load_backend(path, None)
    yield backend
    backend.close()


def test_tiny_model_answers_a_known_fact_with_a_cited_page(library, tiny_backend):  # noqa: F811
    db, pdf = library
    qa = Answerer(db, tiny_backend, HybridSearcher(db), default_pipeline(),
                  config=QAConfig(context_tokens=300, answer_tokens=60),
                  refine_boxes=WordBoxes())
    result = answer_once(qa, "Which reservoir does meltwater from the eastern glacier feed?")
    assert result.context_tokens <= 300
    assert result.prompt_tokens <= tiny_backend.n_ctx
    assert "Lindqvist" in result.raw_text
    assert not result.declined
    assert any(c.page == 3 and "Lindqvist" in c.quote and c.boxes for c in result.citations)


def test_tiny_model_unrelated_question_is_not_presented_as_fact(library, tiny_backend):  # noqa: F811
    db, _ = library
    qa = Answerer(db, tiny_backend, HybridSearcher(db), default_pipeline(),
                  config=QAConfig(context_tokens=300, answer_tokens=60))
    result = answer_once(qa, "What is the boiling point of liquid nitrogen at sea level?")
    # Whatever the small model writes, nothing in the sources supports it.
    assert result.declined and result.citations == []
