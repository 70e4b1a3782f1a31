"""bench/qa_eval.py's retrieval-only mode: the hit rule counts only the
lines a source shows, `retrieve_item` selects exactly what an answer is
given, and the tokenizer-only backend counts like the loaded model."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.answer_events import SourceUsage
from engine.qa import answer_once
from storage import documents

import test_qa
from qa_support import ExtractiveBackend
from test_qa import CODE, answerer
from tests_support import bench_module

library = test_qa.library          # the fixture: a PDF and a Python file, ingested


def qa_eval():
    return bench_module("qa_eval")


def usage(**fields) -> SourceUsage:
    base = dict(label=1, document_id=1, document_name="d", segment_ids=[1], page=None,
                line_start=None, line_end=None, tokens=10, score=1.0, text="")
    return SourceUsage(**{**base, **fields})


def test_a_pruned_function_covers_only_the_lines_it_shows():
    q = qa_eval()
    pruned = usage(line_start=100, line_end=160, line_ranges=[[100, 101], [140, 146]])
    item = {"kind": "code", "lines": [120, 122]}
    assert not q.retrieval_hit(item, [pruned])          # inside the span, not shown
    assert q.retrieval_hit({**item, "lines": [141, 145]}, [pruned])
    assert not q.retrieval_hit({**item, "lines": [145, 148]}, [pruned])   # partly shown
    # two sources together cover a range neither covers alone
    other = usage(line_start=147, line_end=150, line_ranges=[[147, 150]])
    assert q.retrieval_hit({**item, "lines": [145, 148]}, [pruned, other])
    # PDFs: any page a selected source lies on
    pdf = usage(page=4, pages=[4, 5])
    assert q.retrieval_hit({"kind": "pdf", "page": 5}, [pdf])
    assert not q.retrieval_hit({"kind": "pdf", "page": 6}, [pdf])


def test_retrieve_item_scores_the_context_an_answer_is_given(library):
    db, _ = library
    q = qa_eval()
    backend = ExtractiveBackend()
    qa = answerer(db, backend, context_tokens=400)
    code = next(d for d in documents.list_documents(db) if d.display_name == "reservoir.py")
    lines = CODE.splitlines()
    start = next(i for i, line in enumerate(lines, 1) if "return max(0.0" in line)
    item = {"id": "t-1", "type": "code-what", "doc": "reservoir.py", "kind": "code",
            "question": "How is the water that spills over the dam computed?",
            "answer": "inflow - capacity", "lines": [start, start]}
    row = q.retrieve_item(qa, item, code.id)
    assert row["retrieval_hit"] is True and row["search_rank"] == 1
    assert backend.prompts == []                        # nothing was generated
    assert row["budget"] == 400 and 0 < row["context_tokens"] <= 400
    result = answer_once(qa, item["question"], document_ids=[code.id])
    assert row["context_tokens"] == result.context_tokens
    assert [s["lines"] for s in row["selected"]] == [s.line_ranges for s in result.sources]
    # far from the selected lines: a miss, and unanswerable items are not scored
    assert q.retrieve_item(qa, {**item, "lines": [1, 1]}, code.id)["retrieval_hit"] is False
    assert q.retrieve_item(qa, {**item, "answer": "UNANSWERABLE"}, code.id)["retrieval_hit"] is None


@pytest.mark.slow
def test_the_tokenizer_alone_counts_like_the_loaded_model():
    from engine.backends import load_backend
    from engine.model_files import tiny_model_path

    try:
        path = tiny_model_path()
    except Exception as exc:   # the test extra installs it; say so when absent
        pytest.skip(f"tiny model not installed: {exc}")
    settings = SimpleNamespace(model=None, device="cpu", models_dir=None)
    counter = qa_eval().load_token_counter(settings, path)
    full = load_backend(path, None)
    try:
        text = "def parse_constant(self, name):\n    return _CONSTANTS[name]  # Hartigan–Wong"
        messages = [{"role": "system", "content": "Sources.\n\n" + text},
                    {"role": "user", "content": "What does it return?"}]
        assert counter.count_tokens(text) == full.count_tokens(text)
        assert counter.prompt_tokens(messages) == full.prompt_tokens(messages)
        assert counter.n_ctx == full.n_ctx and counter.info.name == full.info.name
        with pytest.raises(RuntimeError, match="nothing to generate"):
            counter.stream(messages, max_tokens=4)
    finally:
        full.close()


def test_answer_containment_follows_the_sets_rule():
    q = qa_eval()
    assert q.contains("It lives in $HOME/.dynare under Unix.", "$HOME/.dynare")
    assert q.contains("Released in \u201cAugust 2010\u201d", '"august  2010"')
    assert q.contains("GPL\u20112 or later", "GPL-2 or later")       # dashes made ASCII
    # punctuation is part of the answer: "DYNARE" alone is not "~/.dynare"
    assert not q.contains("The Parallel DYNARE configuration file lives on Unix.", "~/.dynare")
    assert not q.contains("anything", "  ")
    assert q.contains("the `ArgumentParser` constructor", "ArgumentParser constructor")


def test_the_answer_is_scored_as_shown_and_the_models_words_beside_it(library):
    """Answer accuracy reads the app's answer (README), which for a
    where-question ends with the cited definition (locate.py); the model's
    own words are scored beside it, so what Folio adds stays visible."""
    q = qa_eval()
    db, _ = library
    doc = next(d for d in documents.list_documents(db) if d.display_name == "reservoir.py")
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "Where is the water that spills over the dam computed?")
    item = {"id": "t", "type": "code-where", "doc": "reservoir.py", "kind": "code",
            "answer": "Reservoir.overflow_volume", "answer_aliases": [], "lines": [11, 13]}
    row = q.score_item(item, result, doc.id)
    assert row["answer_ok"] and not row["model_answer_ok"] and row["citation_ok"]
    summary = q.summarize([row])
    assert summary["answer_accuracy"] == 1.0 and summary["model_answer_accuracy"] == 0.0


def test_evidence_hit_needs_the_quote_itself_not_just_its_page():
    """A page can be selected with the sentence that answers pruned away:
    retrieval hit counts it, evidence hit does not."""
    q = qa_eval()
    item = {"kind": "pdf", "page": 7, "evidence": "maxit The maximum number of iterations. "
            "Defaults to 100 for the derivative-based methods, and 500 for \u201cNelder-Mead\u201d."}
    shown = usage(page=7, pages=[7], text="Details \u2026 maxit The maximum number of\n"
                  "iterations. Defaults to 100 for the derivative-based methods, and 500 for "
                  "\"Nelder-Mead\". abstol The absolute convergence tolerance.")
    pruned = usage(page=7, pages=[7], text="Details \u2026 abstol The absolute convergence "
                   "tolerance. maxit The maximum number of iterations.")
    assert q.retrieval_hit(item, [shown]) and q.retrieval_hit(item, [pruned])
    assert q.evidence_hit(item, [shown])
    assert not q.evidence_hit(item, [pruned])
    assert 0.0 < q.evidence_share(item, [pruned]) < 0.8
    # a table row quoted from the page text is found in its Markdown rendering
    row = {"kind": "pdf", "page": 2, "evidence": "Acme Corp 15.000,00 2019"}
    table = usage(page=2, pages=[2], text="| Donor | Amount | Year |\n|---|---|---|\n"
                  "| Acme Corp | 15.000,00 | 2019 |")
    assert q.evidence_hit(row, [table])
    # scored rows carry it, and older runs without it still summarise
    assert q.summarize([{"type": "lookup", "answer_ok": True, "retrieval_hit": True,
                         "citation_ok": True, "ttft_s": 1.0, "total_s": 2.0,
                         "context_tokens": 10}])["evidence_hit"] is None
