"""Packing into a token budget: never over it, labels in document order,
sources that map back to the stored text exactly; and the pipelines."""
from __future__ import annotations

import random

import pytest

from engine.search import SearchHit
from engine.select import (GAP, Candidate, Pack, Pipeline, PruneSentences, Rerank,
                           baseline_pipeline, candidates_from_hits, default_pipeline,
                           render_sources, source_header)
from ingest.tokens import count_tokens
from test_select_support import cand, code_segments, context, seg
from test_select_steps import SOURCE

WORDS = ("kmeans algorithm default iterations maxit optimiser cluster matrix vector "
         "table value method returns parser decoder sample random seed mean").split()


def random_library(rng: random.Random) -> list:
    segments = []
    for doc in (1, 2, 3):
        for ordinal in range(rng.randint(3, 9)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))).capitalize()
                         + rng.choice([".", ".", "!", ""]) for _ in range(rng.randint(1, 8))]
            kind = rng.choice(["paragraph", "paragraph", "list", "table"])
            segments.append(seg(" ".join(sentences), doc=doc, ordinal=ordinal, kind=kind,
                                page=1 + ordinal // 3, section=[f"Chapter {doc}"],
                                document_name=f"doc{doc}.pdf"))
    return segments


def check_selection(selection, ctx, by_document: bool = True) -> None:
    rendered = render_sources(selection)
    assert count_tokens(rendered) == selection.used_tokens <= ctx.budget
    assert [s.label for s in selection.sources] == list(range(1, len(selection.sources) + 1))
    # document order: each document's sources are contiguous and in position order
    docs = [s.document_id for s in selection.sources]
    assert not by_document or all(docs.index(d) == i or docs[i - 1] == d
                                  for i, d in enumerate(docs))
    for a, b in zip(selection.sources, selection.sources[1:]):
        if by_document and a.document_id == b.document_id:
            assert a.parts[-1].segment.ordinal < b.parts[0].segment.ordinal
    for source in selection.sources:
        assert rendered.count(source_header(source) + "\n" + source.text) == 1
        offset = 0
        for part in source.parts:
            # every part maps back exactly, and so does any span inside it
            located = source.locate(offset, offset + len(part.text))
            assert [(p.segment.id, a, b) for p, a, b in located] == [
                (part.segment.id, part.start, part.end)]
            assert source.text[offset:offset + len(part.text)] == part.segment.text[part.start:part.end]
            if len(part.text) > 4:
                (p, a, b), = source.locate(offset + 2, offset + len(part.text) - 1)
                assert p.segment.text[a:b] == source.text[offset + 2:offset + len(part.text) - 1]
            offset += len(part.text) + len(GAP)
            if part.segment.kind == "table":   # tables are whole
                assert (part.start, part.end) == (0, len(part.segment.text))


def test_packing_never_exceeds_random_budgets():
    rng = random.Random(7)
    for trial in range(60):
        segments = random_library(rng)
        pool = [cand(s, rng.random() / 30) for s in rng.sample(segments, min(12, len(segments)))]
        question = " ".join(rng.sample(WORDS, 3))
        ctx = context(question, budget=rng.choice([0, 5, 20, 60, 150, 400, 1000, rng.randint(0, 800)]),
                      segments=segments)
        full = trial % 2 == 1     # the baseline orders sources by rank instead
        selection = (default_pipeline() if full else baseline_pipeline(k=6)).run(pool, ctx)
        check_selection(selection, ctx, by_document=full)
        placed = {s.id for src in selection.sources for s in src.segments}
        assert not placed & set(selection.dropped)


def test_a_budget_below_every_segment_gives_an_empty_selection():
    pool = [cand(seg("One two three four five six seven eight nine ten. " * 3)) for _ in range(3)]
    for budget in (0, 3, 10):
        selection = Pack()(pool, context("one", budget=budget))
        assert selection.sources == [] and selection.used_tokens == 0
        assert sorted(selection.dropped) == sorted(c.segment.id for c in pool)
        assert render_sources(selection) == ""


def test_a_prose_hit_too_long_to_fit_comes_in_pruned():
    filler = " ".join(f"Unrelated sentence number {i} about weather." for i in range(30))
    long = seg(filler + " The Nelder-Mead method stops after 500 iterations. " + filler)
    ctx = context("Nelder-Mead iterations", budget=60)
    selection = Pack()([cand(long)], ctx)
    assert selection.sources and "stops after 500 iterations" in selection.sources[0].text
    assert selection.used_tokens <= 60
    assert Pack(shrink=False)([cand(long)], ctx).sources == []


def test_a_code_hit_too_long_to_fit_comes_in_as_its_best_lines():
    from engine.answer_events import source_usage

    body = "\n".join(f"    step_{i} = combine(part_{i}, weights) + offset" for i in range(50))
    text = ("def wrap_chunks(self, chunks):\n"
            '    """Wrap a sequence of text chunks into lines of at most width."""\n'
            f"{body}\n"
            "    if self.max_lines is not None:\n"
            "        if len(self.placeholder) > self.width:\n"
            '            raise ValueError("placeholder too large for max width")\n'
            f"{body.replace('step_', 'more_')}\n    return lines\n")
    code = seg(text, kind="code-function", name="TextWrapper.wrap_chunks", page=None,
               line_start=200, document_name="textwrap.py")
    question = "where is the placeholder checked against the width"
    whole = count_tokens(text)
    for budget in (160, 140, 100):
        ctx = context(question, budget=budget)
        selection = Pack()([cand(code)], ctx)
        check_selection(selection, ctx)
        [source] = selection.sources
        assert 'raise ValueError("placeholder too large for max width")' in source.text
        assert source.text.startswith("def wrap_chunks(self, chunks):")
        assert selection.used_tokens <= budget < whole
        # the block header came with the check, and the lines shown are
        # exactly those of the parts kept
        assert "if self.max_lines is not None:" in source.text
        usage = source_usage(source)
        assert len(usage.line_ranges) == 2 and usage.line_ranges[0][0] == 200
        assert usage.line_ranges[0][1] <= 201                # signature (and docstring)
        assert usage.line_ranges[1][0] <= 252 and 254 <= usage.line_ranges[1][1] < 300
    ctx = context(question, budget=100)
    assert Pack(shrink_code=False)([cand(code)], ctx).sources == []
    # no line shares a word with the question: nothing to shrink to
    assert Pack()([cand(code)], context("kmeans clustering", budget=100)).sources == []
    # below the signature and one window: nothing fits
    assert Pack()([cand(code)], context(question, budget=60)).sources == []


def test_added_context_is_dropped_with_its_hit():
    hit = seg("A long hit. " * 200)
    extra = seg("A neighbour.")
    pool = [cand(hit), Candidate(extra, role="neighbour", parent=hit.id)]
    selection = Pack(shrink=False)(pool, context("hit", budget=50))
    assert selection.sources == [] and selection.dropped == [hit.id, extra.id]


def test_headers_name_file_page_section_and_code_lines(tmp_path):
    pdf = seg("The algorithm of Hartigan and Wong is used by default.", page=12,
              section=["kmeans", "Details"], document_name="refman.pdf", ordinal=3)
    code = next(s for s in code_segments(tmp_path, SOURCE) if s.name == "JSONDecoder.decode")
    ctx = context("kmeans decode")
    selection = Pack()([cand(pdf, 0.9), cand(code, 0.5)], ctx)
    headers = [source_header(s) for s in selection.sources]
    assert headers == ["[1] refman.pdf, p. 12 — kmeans > Details",
                       f"[2] json/decoder.py:{code.line_start}-{code.line_end} (JSONDecoder.decode)"]


def test_adjacent_segments_merge_and_sources_follow_document_position():
    a = seg("First paragraph of the chapter.", doc=5, ordinal=1, document_name="b.pdf")
    b = seg("Second paragraph right after.", doc=5, ordinal=2, document_name="b.pdf")
    c = seg("A later paragraph.", doc=5, ordinal=8, document_name="b.pdf")
    d = seg("Another document.", doc=6, ordinal=0, document_name="c.pdf")
    # priority order: c, d, b, a -> document 5 first (best rank), in position order
    selection = Pack()([cand(c), cand(d), cand(b), cand(a)], context("paragraph"))
    assert [[p.segment for p in s.parts] for s in selection.sources] == [[a, b], [c], [d]]
    assert selection.sources[0].text == a.text + GAP + b.text
    check_selection(selection, context("paragraph"))


def test_sources_in_score_order_or_the_best_last():
    """"score" puts the best source first (the baseline), "best-last" next
    to the question; merged neighbours stay one source either way."""
    a = seg("First paragraph of the chapter.", doc=5, ordinal=1, document_name="b.pdf")
    b = seg("Second paragraph right after.", doc=5, ordinal=2, document_name="b.pdf")
    c = seg("A later paragraph.", doc=5, ordinal=8, document_name="b.pdf")
    d = seg("Another document.", doc=6, ordinal=0, document_name="c.pdf")
    pool = [cand(c), cand(d), cand(b), cand(a)]           # priority order
    groups = {order: [[p.segment for p in s.parts]
                      for s in Pack(order=order)(pool, context("paragraph")).sources]
              for order in ("score", "best-last")}
    assert groups["score"] == [[c], [d], [a, b]]
    assert groups["best-last"] == [[a, b], [d], [c]]
    with pytest.raises(ValueError, match="pack order"):
        Pack(order="random")(pool, context("paragraph"))


def test_pipeline_records_steps_and_leaves_the_input_untouched():
    relevant = seg("Hartigan and Wong is the default kmeans algorithm.", section=["kmeans"])
    other = seg("Automobiles need oil.", ordinal=5)
    hits = [SearchHit(other, 0.033, 1, 1, 0.4), SearchHit(relevant, 0.016, None, 2, 0.3)]
    pool = candidates_from_hits(hits)
    assert pool[1].scores == {"retrieval": 0.016, "dense": 0.3, "dense_rank": 2.0}
    selection = default_pipeline().run(pool, context("default kmeans algorithm", budget=22))
    assert selection.steps == ["rerank", "diversify", "prune-code", "prune-table", "code",
                               "trim-docstrings", "neighbours", "pack"]
    assert [s.segments for s in selection.sources] == [[relevant]]
    assert selection.dropped == [other.id]
    assert pool[0].score == 0.033 and "rerank" not in pool[0].scores
    assert Pipeline([Rerank()]).without("rerank").names == ["pack"]


def test_a_step_added_after_a_named_one_runs_there():
    pruned = default_pipeline().with_step(PruneSentences(), after="diversify")
    assert pruned.names[:3] == ["rerank", "diversify", "prune"]
    assert default_pipeline().names.count("prune") == 0
    long = seg("The kmeans default is Hartigan-Wong. " + " ".join(
        f"Automobiles need oil number {i}." for i in range(12)), section=["kmeans"])

    def shown(pipeline: Pipeline) -> str:
        selection = pipeline.run(candidates_from_hits([SearchHit(long, 0.03, 1, 1, 0.5)]),
                                 context("kmeans default Hartigan-Wong", budget=200))
        return selection.sources[0].text
    assert shown(default_pipeline()) == long.text
    assert "Hartigan-Wong" in shown(pruned) and "number 11" not in shown(pruned)
    assert default_pipeline(sentence_pruning=True).names == pruned.names
    with pytest.raises(ValueError, match="no step named 'nothing'"):
        default_pipeline().with_step(PruneSentences(), after="nothing")


def test_baseline_takes_top_k_by_dense_score_in_rank_order():
    segs = [seg(f"Paragraph {i} text.", ordinal=i) for i in range(6)]
    hits = [SearchHit(s, 0.01 * i, None, None, 0.1 * ((i * 7) % 6)) for i, s in enumerate(segs)]
    selection = baseline_pipeline(k=3).run(candidates_from_hits(hits), context("text"))
    assert selection.steps == ["top-k", "pack"]
    dense = [0.1 * ((i * 7) % 6) for i in range(6)]
    best = sorted(range(6), key=lambda i: -dense[i])[:3]
    assert [s.parts[0].segment for s in selection.sources] == [segs[i] for i in best]
