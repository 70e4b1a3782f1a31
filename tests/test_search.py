"""Hybrid search and background embedding with the bundled embedder."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.embed_worker import BackgroundEmbedder, embed_pending
from engine.embedder import Embedder, EmbedderConfig, EmbedderError
from engine.search import HybridSearcher
from ingest.model import PageInfo, ParsedDocument, Segment
from storage import documents, embeddings, open_db

PASSAGES = [
    "The Hartigan and Wong algorithm is used by default for k-means clustering.",
    "Nelder-Mead runs at most 500 iterations unless maxit is changed.",
    "Spearman's rank correlation uses algorithm AS 89 for exact p-values.",
    "Automobiles need regular oil changes and tyre rotation.",
    "The Mersenne Twister generator is equidistributed in 623 dimensions.",
]


def doc_of(texts: list[str], name: str = "stats.pdf", sha: str = "1" * 64) -> ParsedDocument:
    segs, pages = [], []
    for number, text in enumerate(texts, 1):
        segs.append(Segment("paragraph", text, 0, len(text), len(text.split()), page=number))
        pages.append(PageInfo(number, 612, 792, "text", text))
    return ParsedDocument(Path(f"/d/{name}"), name, "pdf", "application/pdf", sha, 1, segs, pages)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_bundled_embedder_gives_unit_vectors(embedder):
    vectors = embedder.embed(["hello world", "a second sentence"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert embedder.name == EmbedderConfig().model_name


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedderError, match="no embedding model"):
        Embedder(EmbedderConfig(model_dir=tmp_path))


def test_bm25_works_before_embeddings_and_dense_joins_after(tmp_path, embedder):
    db = open_db(tmp_path / "f.db")
    doc_id = documents.store_document(db, doc_of(PASSAGES))
    searcher = HybridSearcher(db, embedder.name, embedder)
    # A paraphrase with no shared content word: BM25 alone cannot find it.
    question = "car maintenance"
    before = searcher.search(question, k=3)
    assert before == []
    run = embed_pending(db, embedder)
    assert run.embedded == 5 and run.remaining == 0
    assert documents.get_document(db, doc_id).status == "ready"
    after = searcher.search(question, k=3)
    assert after[0].segment.text.startswith("Automobiles")
    assert after[0].dense_rank == 1 and after[0].bm25_rank is None


def test_fusion_ranks_exact_and_semantic_matches(tmp_path, embedder):
    db = open_db(tmp_path / "f.db")
    documents.store_document(db, doc_of(PASSAGES))
    embed_pending(db, embedder)
    hits = HybridSearcher(db, embedder.name, embedder).search(
        "Which k-means algorithm is the default?", k=3)
    assert hits[0].segment.page == 1
    assert hits[0].bm25_rank is not None and hits[0].dense_rank is not None


def test_document_filter(tmp_path, embedder):
    db = open_db(tmp_path / "f.db")
    first = documents.store_document(db, doc_of(PASSAGES[:2], "a.pdf", "a" * 64))
    second = documents.store_document(db, doc_of(PASSAGES[2:], "b.pdf", "b" * 64))
    embed_pending(db, embedder)
    searcher = HybridSearcher(db, embedder.name, embedder)
    hits = searcher.search("algorithm", k=10, document_ids=[second])
    assert hits and {h.segment.document_id for h in hits} == {second}
    assert first not in {h.segment.document_id for h in searcher.search("iterations", document_ids=[second])}


def test_background_embedder_drains_and_resumes(tmp_path, embedder):
    path = tmp_path / "f.db"
    db = open_db(path)
    documents.store_document(db, doc_of(PASSAGES[:3], "a.pdf", "a" * 64))
    # A previous run was killed after embedding one segment.
    first = embeddings.pending_segments(db, embedder.name, limit=1)
    embeddings.save_embeddings(db, embedder.name, [first[0].id], embedder.embed([first[0].text]))
    worker = BackgroundEmbedder(path, embedder.name, lambda: embedder).start()
    try:
        assert worker.wait_idle(60)
        assert embeddings.count_pending(db, embedder.name) == 0
        documents.store_document(db, doc_of(PASSAGES[3:], "b.pdf", "b" * 64))
        worker.wake()
        assert worker.wait_idle(60)
        assert embeddings.count_embeddings(db, embedder.name) == 5
        assert worker.error is None
    finally:
        worker.stop()
    assert {d.status for d in documents.list_documents(db)} == {"ready"}
