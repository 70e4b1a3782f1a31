"""kill -9 at the worst moments: while a long PDF is stored, while embeddings
are written in the background, while a KV cache is written, while an answer
is generated and saved. Each child process dies by SIGKILL at a chosen,
deterministic point; the next start finds a sound file, no half-written
document and no orphan rows or files, earlier documents and chats exactly
as they were, and the interrupted work either resumed or reported."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.embed_worker import BackgroundEmbedder, embed_pending
from engine.embedder import segment_embedding_text
from engine.indexer import ingest_file, ingest_paths
from engine.library import recover
from engine.qa import answer_once
from storage import conversations, documents, fts, open_db, recovery
from storage.embeddings import embedding_progress

from kill_support import (HashEmbedder, answerer, assert_killed, fact_pdf, long_pdf,
                          run_child, snapshot)

BATCH = 4                # segments per embedding transaction
QUESTION = "Which reservoir does meltwater from the eastern glacier feed?"


@dataclass
class Library:
    """A data dir holding one embedded document and one conversation."""
    home: Path
    db_path: Path
    uploads: Path
    notes_id: int
    conversation_id: int

    def open(self):
        return open_db(self.db_path)


@pytest.fixture
def library(tmp_path) -> Library:
    home = tmp_path / "data"
    uploads = home / "uploads"
    (uploads / "a1").mkdir(parents=True)
    db = open_db(home / "folio.db")
    [outcome] = ingest_paths(db, [fact_pdf(uploads / "a1" / "notes.pdf")]).outcomes
    embed_pending(db, HashEmbedder())
    result = answer_once(answerer(db), QUESTION)
    assert "Lindqvist" in result.text and result.citations
    db.close()
    return Library(home, home / "folio.db", uploads, outcome.document_id,
                   result.conversation_id)


def assert_sound(db) -> None:
    found = recovery.check(db)
    assert found.ok, found.problems()


# -- ingestion --------------------------------------------------------------

INGEST_CHILD = """
    import sys
    from pathlib import Path
    from engine.indexer import ingest_file, ingest_paths
    from kill_support import die_on_statement
    from storage import open_db

    db = open_db(Path(sys.argv[1]))
    die_on_statement(db, sys.argv[3], int(sys.argv[4]))
    ingest_paths(db, [Path(sys.argv[2])])
    print("not reached")
"""


@pytest.mark.parametrize("statement, nth", [("INSERT INTO segments", 20), ("COMMIT", 1)],
                         ids=["mid-segments", "at-commit"])
def test_kill_while_storing_a_long_pdf(library, statement, nth):
    (library.uploads / "b2").mkdir()
    pdf = long_pdf(library.uploads / "b2" / "survey.pdf", pages=40)
    db = library.open()
    before = snapshot(db)
    db.close()

    assert_killed(run_child(INGEST_CHILD, library.db_path, pdf, statement, nth))

    db = library.open()
    assert_sound(db)
    assert snapshot(db) == before                 # not one row of the long PDF, nothing lost
    assert fts.bm25_search(db, "marker33") == []
    found = recover(db, embed_model=HashEmbedder.name, uploads_root=library.uploads)
    # The uploaded file that never became a document is reported, to be queued again.
    assert found.unindexed_uploads == [pdf.resolve()]
    assert any("survey.pdf" in m for m in found.messages())

    [outcome] = ingest_paths(db, found.unindexed_uploads).outcomes
    assert outcome.status == "added" and outcome.pages == 40     # not taken for a duplicate
    [hit] = fts.bm25_search(db, "marker33")
    from storage.segments import get_segments
    assert get_segments(db, [hit.segment_id])[0].page == 33
    assert recover(db, uploads_root=library.uploads).unindexed_uploads == []
    assert_sound(db)


REINDEX_CHILD = """
    import sys
    from pathlib import Path
    from engine.indexer import ingest_file
    from kill_support import die_on_statement
    from storage import open_db

    db = open_db(Path(sys.argv[1]))
    die_on_statement(db, "COMMIT")
    ingest_file(db, Path(sys.argv[2]), replace_id=int(sys.argv[3]))
    print("not reached")
"""


def test_kill_while_reindexing_keeps_the_old_version(library):
    notes = library.uploads / "a1" / "notes.pdf"
    db = library.open()
    before = snapshot(db)
    db.close()
    long_pdf(notes, pages=3)                      # the file changed on disk: index it again

    assert_killed(run_child(REINDEX_CHILD, library.db_path, notes, library.notes_id))

    db = library.open()
    assert_sound(db)
    assert snapshot(db) == before                 # the old version, whole, and its chat
    assert fts.bm25_search(db, "Lindqvist") and not fts.bm25_search(db, "marker2")
    outcome = ingest_file(db, notes, replace_id=library.notes_id)
    assert outcome.status == "replaced" and fts.bm25_search(db, "marker2")
    assert not fts.bm25_search(db, "Lindqvist")
    # Same content again is a re-index, not a duplicate of itself.
    assert ingest_file(db, notes, replace_id=outcome.document_id).status == "replaced"
    assert [d.display_name for d in documents.list_documents(db)] == ["notes.pdf"]
    assert conversations.get_turns(db, library.conversation_id)[0].citations
    assert_sound(db)


# -- background embedding ----------------------------------------------------

EMBED_CHILD = """
    import sys
    from pathlib import Path
    import engine.embed_worker as worker
    from kill_support import HashEmbedder, die_on_statement

    mode, n, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "commit":
        # The worker's own connection dies as its n-th batch commits.
        real_open = worker.open_db
        def open_db(path):
            db = real_open(path)
            die_on_statement(db, "COMMIT", n)
            return db
        worker.open_db = open_db
    make = lambda: HashEmbedder(die_on_call=n if mode == "embed" else None)
    bg = worker.BackgroundEmbedder(Path(sys.argv[1]), HashEmbedder.name, make, batch=batch).start()
    bg.wait_idle(120)
    print("not reached", bg.error)
"""


def _stored_vectors_match_their_segments(db) -> int:
    rows = db.execute("""SELECT s.text, s.section, s.name, e.vector FROM embeddings e
                         JOIN segments s ON s.id = e.segment_id WHERE e.model = ?""",
                      [HashEmbedder.name]).fetchall()
    for text, section, name, blob in rows:
        expected = HashEmbedder.vector(segment_embedding_text(text, section, name))
        assert np.array_equal(np.frombuffer(blob, dtype=np.float32), expected)
    return len(rows)


@pytest.mark.parametrize("mode", ["embed", "commit"], ids=["in-model", "at-commit"])
def test_kill_during_background_embedding_resumes(library, mode):
    db = library.open()
    pdf = long_pdf(library.home / "survey.pdf", pages=20)
    [outcome] = ingest_paths(db, [pdf]).outcomes
    total = outcome.segments
    assert total > 3 * BATCH                        # the third batch is not the last
    earlier = snapshot(db, ("conversations", "turns", "citations", "embeddings"))
    notes_row = documents.get_document(db, library.notes_id)
    db.close()

    assert_killed(run_child(EMBED_CHILD, library.db_path, mode, 3, BATCH))

    db = library.open()
    assert_sound(db)
    progress = embedding_progress(db, HashEmbedder.name)[outcome.document_id]
    assert (progress.done, progress.total) == (2 * BATCH, total)   # whole batches only
    assert _stored_vectors_match_their_segments(db) == 2 * BATCH + len(earlier["embeddings"])
    assert documents.get_document(db, outcome.document_id).status == "searchable"
    assert documents.get_document(db, library.notes_id) == notes_row
    after = snapshot(db, ("conversations", "turns", "citations"))
    assert after == {k: v for k, v in earlier.items() if k != "embeddings"}

    found = recover(db, embed_model=HashEmbedder.name)
    assert [(p.document_id, p.done, p.total) for p in found.unembedded] == \
        [(outcome.document_id, 2 * BATCH, total)]
    assert any(f"interrupted at {2 * BATCH} of {total}" in m for m in found.messages())

    # The next start's worker picks the work list up where the kill left it.
    bg = BackgroundEmbedder(library.db_path, HashEmbedder.name, HashEmbedder, batch=BATCH).start()
    try:
        assert bg.wait_idle(60) and bg.error is None
    finally:
        bg.stop()
    assert _stored_vectors_match_their_segments(db) == total + len(earlier["embeddings"])
    assert documents.get_document(db, outcome.document_id).status == "ready"
    assert recover(db, embed_model=HashEmbedder.name).unembedded == []


# -- KV-cache writing --------------------------------------------------------

KV_CHILD = """
    import os, sys
    from pathlib import Path
    import engine.sparse.kv_build as kv_build
    import engine.sparse.registry as registry
    from kill_support import die, sparse_engine
    from storage import open_db

    db_path, kv_root, doc_id, point = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    engine = sparse_engine(kv_root)
    if point == "prefill":          # half the chunks' blocks are in the files
        real_store, calls = kv_build._PrefillAttention._store, [0]
        def store(self, maps, layer, x):
            calls[0] += 1
            if calls[0] == 13:
                die()
            real_store(self, maps, layer, x)
        kv_build._PrefillAttention._store = store
    elif point == "swap":           # the old cache moved aside, the new one not yet in place
        real_replace = os.replace
        def replace(src, dst):
            real_replace(src, dst)
            if ".old-" in str(dst):
                die()
        os.replace = replace
    elif point == "register":       # the cache is complete, its row still says 'writing'
        registry.register = lambda *args, **kwargs: die()
    registry.prefill_for_document(engine, open_db(db_path), doc_id, list(range(7, 207)), "doc-b")
    print("not reached")
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("point", ["prefill", "swap", "register"])
def test_kill_while_writing_a_kv_cache(library, tmp_path, point):
    from engine.sparse.kvstore import open_cache
    from engine.sparse.registry import prefill_for_document
    from kill_support import sparse_engine
    from storage.kv_caches import list_kv_caches
    from tests_support import small_document

    kv_root = library.home / "kv"
    engine = sparse_engine(kv_root)
    db = library.open()
    doc_b = documents.store_document(db, small_document(sha="b" * 64, name="b.pdf"))
    kept = prefill_for_document(engine, db, library.notes_id, list(range(3, 90)), "doc-a")
    if point == "swap":   # a cache of doc-b exists, and is being replaced
        prefill_for_document(engine, db, doc_b, list(range(100)), "doc-b")
    kept_files = _files(kept.path)
    before = snapshot(db)
    db.close()

    assert_killed(run_child(KV_CHILD, library.db_path, kv_root, doc_b, point))

    model_dir = kv_root / "tiny-model"
    leftovers = {p.name.split("-")[0] if p.name.startswith(".") else p.name
                 for p in model_dir.iterdir()}
    db = library.open()
    [row_b] = [r for r in list_kv_caches(db) if r.document_id == doc_b]
    assert row_b.status == "writing"              # the damage the kill left behind
    assert {"prefill": {".doc", "doc-a"}, "swap": {".doc", "doc-a"},
            "register": {"doc-a", "doc-b"}}[point] <= leftovers

    found = recover(db, kv_root=kv_root)
    assert found.kv_rows_dropped == 1 and found.kv_removed
    assert sorted(p.name for p in model_dir.iterdir()) == ["doc-a"]   # no half cache, no orphan
    assert [(r.document_id, r.status) for r in list_kv_caches(db)] == [(library.notes_id, "ready")]
    assert _files(kept.path) == kept_files
    assert snapshot(db, ("documents", "pages", "segments", "embeddings", "conversations",
                         "turns", "citations")) == {k: v for k, v in before.items()
                                                    if k != "kv_caches"}
    assert_sound(db)

    # The cache is rebuilt on the next request, and recorded as ready.
    cache = prefill_for_document(engine, db, doc_b, list(range(7, 207)), "doc-b")
    assert open_cache(cache.path).layout.tokens == 200
    assert {r.document_id: r.status for r in list_kv_caches(db)} == \
        {library.notes_id: "ready", doc_b: "ready"}
    assert recover(db, kv_root=kv_root).kv_removed == []


# -- an answer ----------------------------------------------------------------

ANSWER_CHILD = """
    import sys
    from pathlib import Path
    from engine.qa import answer_once
    from kill_support import answerer, die, die_on_statement
    from storage import open_db

    db = open_db(Path(sys.argv[1]))
    qa = answerer(db)
    if sys.argv[3] == "generating":
        real_stream = qa.backend.stream
        def stream(*args, **kwargs):
            for i, piece in enumerate(real_stream(*args, **kwargs)):
                if i == 2:
                    die()
                yield piece
        qa.backend.stream = stream
    else:   # the turn row is written, its citations are not yet
        die_on_statement(db, "INSERT INTO citations")
    answer_once(qa, sys.argv[4], conversation_id=int(sys.argv[2]))
    print("not reached")
"""


@pytest.mark.parametrize("point", ["generating", "saving"])
def test_kill_during_an_answer_is_reported_and_keeps_the_conversation(library, point):
    db = library.open()
    before = snapshot(db)
    db.close()
    question = "Where does the observatory on the ridge record wind speed?"

    assert_killed(run_child(ANSWER_CHILD, library.db_path, library.conversation_id, point,
                            question))

    db = library.open()
    assert_sound(db)
    # The question is on record (no answer, no citations) and earlier turns
    # are untouched; the start-up check marks it and says so.
    after = snapshot(db)
    assert after["citations"] == before["citations"]
    report = recover(db)
    assert report.interrupted == [(library.conversation_id, question)]
    assert any("cut off" in m and "observatory" in m for m in report.messages())
    turns = conversations.get_turns(db, library.conversation_id)
    assert [(t.ordinal, t.status, t.answer) for t in turns[1:]] == [(1, "interrupted", "")]
    assert recover(db).interrupted == []                      # reported once
    result = answer_once(answerer(db), "How does the observatory record wind speed?",
                         conversation_id=library.conversation_id)
    turns = conversations.get_turns(db, library.conversation_id)
    assert [t.ordinal for t in turns] == [0, 1, 2] and turns[2].id == result.turn_id
    assert turns[0].citations and "Lindqvist" in turns[0].answer
    assert turns[2].status == "done"
    assert_sound(db)


# -- the start-up check itself -------------------------------------------------

def test_the_start_up_check_finds_what_a_crash_could_leave(library):
    """The checks above pass because nothing is wrong, not because the check
    is blind: a library damaged by hand is reported, and orphans removed."""
    db = library.open()
    assert_sound(db)
    db.execute("PRAGMA foreign_keys = OFF")
    with db.conn:
        db.execute("DELETE FROM conversations")                       # its turn is orphaned
        db.execute("UPDATE documents SET segments = segments + 1")    # looks half-written
        db.execute("INSERT INTO segments_fts (rowid, text, section, name) "
                   "VALUES (999, 'ghost', '', '')")                   # index without its row
    db.execute("PRAGMA foreign_keys = ON")
    found = recovery.check(db)
    assert not found.ok and not found.fts_ok
    assert found.orphans["turns"] == 1 and found.orphans["segments"] == 0
    assert found.half_written == [library.notes_id]
    result = recover(db)
    assert result.removed_rows["turns"] == 1
    assert any("keyword index" in m for m in result.messages())
    assert not any(recovery.check(db).orphans.values())
    assert db.execute("SELECT COUNT(*) FROM citations").fetchone()[0] == 0   # went with the turn
