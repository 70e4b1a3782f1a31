"""A process that dies half-way through writing a document leaves nothing
half-written: the next open sees the library exactly as before."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from storage import documents, fts, integrity_ok, open_db
from tests_support import small_document

CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from ingest.model import PageInfo, ParsedDocument, Segment
    from storage import documents, open_db

    class DiesHalfWay(list):
        # Iterating the segments (inside the write transaction) kills the
        # process after 500 rows, like a power cut or kill -9.
        def __iter__(self):
            for index, item in enumerate(list.__iter__(self)):
                if index == 500:
                    os._exit(9)
                yield item

    db = open_db(Path(sys.argv[1]))
    text = "volcano " * 3
    segs = DiesHalfWay(Segment("paragraph", text, 0, len(text), 3, page=1) for _ in range(1000))
    doc = ParsedDocument(Path("/d/big.pdf"), "big.pdf", "pdf", "application/pdf", "f" * 64, 1,
                         segs, [PageInfo(1, 612, 792, "text", text)])
    documents.store_document(db, doc)
    print("not reached")
""")


def test_crash_mid_document_leaves_no_trace(tmp_path):
    path = tmp_path / "folio.db"
    db = open_db(path)
    keep = documents.store_document(db, small_document())
    db.close()
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    db = open_db(path)
    assert integrity_ok(db)
    assert [d.id for d in documents.list_documents(db)] == [keep]
    assert db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 1
    assert fts.bm25_search(db, "volcano") == []
    assert fts.bm25_search(db, "glacier")
