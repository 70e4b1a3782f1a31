"""Documents' stored KV caches built ahead of their first question.

The sparse engine builds a document's KV cache when a question first needs
it: on 2 CPU cores a 4,096-token page takes about half a minute, paid by
that question. On a GPU a whole document is read in seconds, so a person
who asks for it (`folio kv`, `folio ingest --kv`) can have every page built
at ingestion and the first question start as fast as the follow-ups. The
caches are exactly the ones answering reads (same system prompt, same page
split, same keys), so nothing is built twice.
"""
from __future__ import annotations

from typing import Callable

import sqlite_utils

from storage import documents
from storage import segments as segment_store

from .backends import ModelError


def prebuild_kv(backend, db: sqlite_utils.Database, document_ids: list[int],
                report: Callable[[str], None] | None = None) -> list:
    """Build (or find already stored) the KV caches that answers about
    `document_ids` will read: every page in retrieval mode, the whole
    document in document mode. Returns the backend's `DocumentRead` per
    document built; `report` hears one line per document."""
    from .prompts import SPARSE_SYSTEM_PROMPT

    if not hasattr(backend, "read_document"):
        raise ModelError(f"{backend.info.name} runs on llama.cpp, which keeps no stored KV "
                         "cache; use the sparse engine (--backend sparse)")
    say = report or (lambda line: None)
    whole = backend.options.mode == "document"
    reads = []
    for document_id in document_ids:
        doc = documents.get_document(db, document_id)
        if doc is None:
            raise ModelError(f"no document {document_id}")
        segs = segment_store.document_segments(db, document_id)
        if not segs:
            say(f"- {doc.display_name}: no text to read ({doc.status})")
            continue
        wanted = None if whole else {s.id for s in segs}
        _, read = backend.read_document(db, document_id, SPARSE_SYSTEM_PROMPT, wanted)
        reads.append(read)
        what = f"{len(read.pages)} pages" if read.pages else "whole document"
        state = f"built in {read.build_s:.1f} s" if read.built else "already stored"
        say(f"+ {doc.display_name}: {read.tokens:,} tokens ({what}), {state}")
    return reads
