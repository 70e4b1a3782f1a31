"""Chats, answers and citations persist, and outlive their documents."""
from __future__ import annotations

from storage import conversations as chats
from storage import documents, open_db
from storage.records import CitationRecord

from tests_support import small_document


def citation(doc_id: int | None, label: int = 1) -> CitationRecord:
    return CitationRecord(label=label, sentence=0, document_id=doc_id, document_name="small.pdf",
                          document_path="/d/small.pdf", segment_id=1, page=1, line_start=None,
                          line_end=None, char_start=4, char_end=11, quote="glacier",
                          boxes=[[1.0, 2.0, 3.0, 4.0]], score=0.9)


def test_turns_and_citations_round_trip_across_reopen(tmp_path):
    db = open_db(tmp_path / "f.db")
    doc_id = documents.store_document(db, small_document())
    conv = chats.create_conversation(db, document_ids=[doc_id])
    chats.add_turn(db, conv, question="What advances?", search_query="What advances?",
                   answer="The glacier [1].", declined=False, model="tiny",
                   metadata={"ttft_s": 1.5}, citations=[citation(doc_id)])
    chats.add_turn(db, conv, question="When?", search_query="What advances? When?",
                   answer="Every winter [1].", declined=False, model="tiny",
                   metadata={}, citations=[citation(doc_id), citation(doc_id, 2)])
    db.conn.close()

    db = open_db(tmp_path / "f.db")
    record = chats.get_conversation(db, conv)
    assert record.title == "What advances?" and record.document_ids == [doc_id]
    assert [t.ordinal for t in record.turns] == [0, 1]
    first, second = record.turns
    assert first.metadata == {"ttft_s": 1.5} and not first.declined
    assert first.citations[0].boxes == [[1.0, 2.0, 3.0, 4.0]]
    assert first.citations[0].quote == "glacier"
    assert [c.label for c in second.citations] == [1, 2]
    assert [c.id for c in chats.list_conversations(db)] == [conv]


def test_removing_a_document_keeps_the_chat_and_its_quotes(tmp_path):
    db = open_db(tmp_path / "f.db")
    doc_id = documents.store_document(db, small_document())
    conv = chats.create_conversation(db)
    chats.add_turn(db, conv, question="q", search_query="q", answer="a", declined=False,
                   model="m", metadata={}, citations=[citation(doc_id)])
    documents.remove_document(db, doc_id)
    [turn] = chats.get_turns(db, conv)
    assert turn.citations[0].document_id is None
    assert turn.citations[0].quote == "glacier"


def test_a_citation_of_an_already_removed_document_is_stored_without_its_id(tmp_path):
    db = open_db(tmp_path / "f.db")
    conv = chats.create_conversation(db)
    chats.add_turn(db, conv, question="q", search_query="q", answer="a", declined=False,
                   model="m", metadata={}, citations=[citation(999)])
    assert chats.get_turns(db, conv)[0].citations[0].document_id is None


def test_delete_and_clear(tmp_path):
    db = open_db(tmp_path / "f.db")
    a, b = chats.create_conversation(db), chats.create_conversation(db)
    chats.add_turn(db, a, question="q", search_query="q", answer="a", declined=True,
                   model="m", metadata={}, citations=[])
    assert chats.delete_conversation(db, a)
    assert not chats.delete_conversation(db, a)
    assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0
    assert chats.clear_conversations(db) == 1
    assert chats.list_conversations(db) == [] and chats.get_conversation(db, b) is None
