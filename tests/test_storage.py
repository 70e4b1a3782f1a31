"""Storage: schema, atomic document writes, FTS sync, embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.model import LineBox, PageInfo, ParsedDocument, Segment
from storage import SCHEMA_VERSION, SchemaTooNew, integrity_ok, open_db
from storage import documents, embeddings, fts, segments


def make_doc(path: str = "/docs/a.pdf", sha: str = "a" * 64,
             texts: tuple[str, ...] = ("The zebra crossing rules.", "Otters hold hands.")
             ) -> ParsedDocument:
    page_text = "\n".join(texts)
    segs, offset = [], 0
    for t in texts:
        segs.append(Segment(kind="paragraph", text=t, char_start=offset,
                            char_end=offset + len(t), tokens=len(t.split()), page=1,
                            boxes=[LineBox(10, 10, 100, 20, offset, offset + len(t))],
                            section=["Animals", "Rules"]))
        offset += len(t) + 1
    return ParsedDocument(path=Path(path), display_name=Path(path).name, kind="pdf",
                          mime="application/pdf", sha256=sha, size=123, segments=segs,
                          pages=[PageInfo(1, 612, 792, "text", page_text)])


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "folio.db")


def test_new_database_is_migrated_and_in_wal_mode(db):
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"documents", "pages", "segments", "embeddings", "segments_fts"} <= set(db.table_names())
    assert integrity_ok(db)


def test_newer_schema_is_refused(tmp_path):
    db = open_db(tmp_path / "f.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew):
        open_db(tmp_path / "f.db")


def test_store_and_read_back_with_spans_and_boxes(db):
    doc_id = documents.store_document(db, make_doc())
    record = documents.get_document(db, doc_id)
    assert record.status == "searchable" and record.pages == 1 and record.segments == 2
    segs = segments.document_segments(db, doc_id)
    page = documents.get_page(db, doc_id, 1)
    for seg in segs:
        assert page.text[seg.char_start:seg.char_end] == seg.text
        assert seg.section == ["Animals", "Rules"]
        assert seg.boxes[0].x1 == 100
    assert segs[0].document_name == "a.pdf"


def test_fts_finds_words_and_follows_deletes(db):
    doc_id = documents.store_document(db, make_doc())
    hits = fts.bm25_search(db, "Where do otters hold hands?")
    assert hits and segments.get_segments(db, [hits[0].segment_id])[0].text == "Otters hold hands."
    # section words are indexed too
    assert fts.bm25_search(db, "animals")
    documents.remove_document(db, doc_id)
    assert fts.bm25_search(db, "otters") == []
    assert db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == 0


def test_match_expression_quotes_user_syntax():
    # FTS5 operators and punctuation become quoted plain terms; stopwords go
    assert fts.match_expression('what is "NEAR(" AND x-ray:zeta*?') == \
        '"near" OR "ray" OR "zeta" OR "x ray zeta"'
    assert fts.match_expression("what is it") == '"what" OR "is" OR "it"'
    assert fts.match_expression("?!") is None


def test_failed_write_leaves_nothing(db):
    bad = make_doc()
    bad.segments[1].kind = "not-a-kind"   # violates the CHECK constraint mid-insert
    with pytest.raises(Exception):
        documents.store_document(db, bad)
    assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 0
    assert fts.bm25_search(db, "zebra") == []


def test_replace_swaps_versions_atomically(db):
    old = documents.store_document(db, make_doc())
    new_doc = make_doc(sha="b" * 64, texts=("Penguins slide on ice.",))
    new_id = documents.store_document(db, new_doc, replace_id=old)
    assert [d.id for d in documents.list_documents(db)] == [new_id]
    assert fts.bm25_search(db, "zebra") == []
    assert fts.bm25_search(db, "penguins")

    broken = make_doc(sha="c" * 64)
    broken.segments[0].kind = "bogus"
    with pytest.raises(Exception):
        documents.store_document(db, broken, replace_id=new_id)
    assert [d.sha256 for d in documents.list_documents(db)] == ["b" * 64]


def test_failure_record_is_superseded_by_success(db):
    documents.record_failure(db, Path("/docs/a.pdf"), display_name="a.pdf", sha256="a" * 64,
                             size=1, kind="pdf", error_code="corrupt", error="a.pdf: broken")
    assert documents.find_by_sha256(db, "a" * 64) is None
    assert documents.list_documents(db)[0].error == "a.pdf: broken"
    documents.store_document(db, make_doc())
    docs = documents.list_documents(db)
    assert [d.status for d in docs] == ["searchable"]


def test_resolve_documents_by_id_name_path_and_hash(db):
    doc_id = documents.store_document(db, make_doc())
    for ref in (str(doc_id), "a.pdf", "/docs/a.pdf", "aaaaaaaa"):
        assert [d.id for d in documents.resolve_documents(db, ref)] == [doc_id]
    assert documents.resolve_documents(db, "nothing.pdf") == []


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_embeddings_round_trip_resume_and_ready(db, dtype):
    doc_id = documents.store_document(db, make_doc())
    model = "test-model"
    pending = embeddings.pending_segments(db, model)
    assert len(pending) == 2
    rng = np.random.default_rng(0)
    first = rng.normal(size=(1, 8)).astype(np.float32)
    embeddings.save_embeddings(db, model, [pending[0].id], first, dtype=dtype)
    # resumable: only the second is still pending, document not yet ready
    assert [p.id for p in embeddings.pending_segments(db, model)] == [pending[1].id]
    assert documents.get_document(db, doc_id).status == "searchable"
    assert embeddings.count_pending(db, model) == 1
    second = rng.normal(size=(1, 8)).astype(np.float32)
    embeddings.save_embeddings(db, model, [pending[1].id], second, dtype=dtype)
    assert documents.get_document(db, doc_id).status == "ready"
    ids, doc_ids, matrix = embeddings.load_matrix(db, model)
    assert list(doc_ids) == [doc_id, doc_id]
    assert list(ids) == [pending[0].id, pending[1].id]
    tolerance = 1e-6 if dtype == "float32" else 0.02
    np.testing.assert_allclose(matrix, np.vstack([first, second]), atol=tolerance)
    progress = embeddings.embedding_progress(db, model)[doc_id]
    assert (progress.done, progress.total) == (2, 2)


def test_embeddings_for_removed_segments_are_dropped(db):
    doc_id = documents.store_document(db, make_doc())
    pending = embeddings.pending_segments(db, "m")
    documents.remove_document(db, doc_id)
    written = embeddings.save_embeddings(db, "m", [p.id for p in pending],
                                         np.ones((2, 4), dtype=np.float32))
    assert written == 0
    assert embeddings.count_embeddings(db, "m") == 0


def test_two_connections_see_committed_documents(tmp_path):
    writer = open_db(tmp_path / "f.db")
    reader = open_db(tmp_path / "f.db")
    documents.store_document(writer, make_doc())
    assert len(documents.list_documents(reader)) == 1


def test_a_literal_joined_by_punctuation_is_also_searched_as_a_phrase(db):
    # "$15.000,00" is the words 15, 000 and 00 to the index, common in any
    # list of amounts; as a phrase it is the one row that holds it
    assert fts.literal_phrases("Who gave $15.000,00 (see json.loads)?") == \
        ["15 000 00", "json loads"]
    assert fts.literal_phrases("Plain words, no literal. None here") == []
    rows = ("MOLLE | 15.348.547 | $ 10.000,00 | $ 15.500,00 | $ 10.000,00 | $ 10.000,00",
            "LORENZO FERNANDO | 22.608.380 | 20-22608380-5 | $ 15.000,00",
            *(f"{name} | {k}.111.222 | $ 5.000,00" for k, name in enumerate(
                ["MENA", "PISONI", "REMON", "SARRA", "VIVALDO", "CASTRO"])))
    doc_id = documents.store_document(db, make_doc(texts=rows))
    hits = fts.bm25_search(db, "Which donor gave $15.000,00?", document_ids=[doc_id])
    top = segments.get_segments(db, [hits[0].segment_id])[0]
    assert top.text.startswith("LORENZO")
    # without the phrase the row with more 15s, 000s and 00s would win
    words = fts.match_expression("Which donor gave 15 000 00?")
    assert '"15 000 00"' not in words
    first = db.execute("SELECT rowid FROM segments_fts WHERE segments_fts MATCH ? "
                       "ORDER BY bm25(segments_fts) LIMIT 1", [words]).fetchone()[0]
    assert segments.get_segments(db, [first])[0].text.startswith("MOLLE")


def test_either_spelling_finds_the_other(db):
    from storage.spelling import american, variants

    assert variants("licence") == ["license"] and variants("license") == ["licence"]
    assert american("optimisation") == "optimization" and american("centred") == "centered"
    assert variants("reference") == [] and variants("premise") == []   # no suffix rules
    doc_id = documents.store_document(db, make_doc(texts=(
        "The package is licensed under the GNU GPL 2 or later.",
        "Pick a colour for the plot.", "Nothing about that here.")))
    hit = fts.bm25_search(db, "Under what licence is it released?", document_ids=[doc_id])
    assert segments.get_segments(db, [hit[0].segment_id])[0].text.startswith("The package")
    hit = fts.bm25_search(db, "Which color?", document_ids=[doc_id])
    assert segments.get_segments(db, [hit[0].segment_id])[0].text.startswith("Pick a colour")
