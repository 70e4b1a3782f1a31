"""Shared helpers for the selection tests (no tests here): crafted segments,
a deterministic fake embedder and a context builder. No model is loaded."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from engine.select import Candidate, SelectionContext
from ingest.code import parse_code
from ingest.tokens import count_tokens
from storage import SegmentRecord

DIM = 512


def fake_embed(texts: list[str]) -> np.ndarray:
    """Hashed bag of (lower-cased, crudely singularised) words, unit rows:
    texts sharing words are similar, like a real embedder but exact."""
    rows = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            word = word[:-1] if len(word) > 3 and word.endswith("s") else word
            h = int(hashlib.md5(word.encode()).hexdigest(), 16)
            rows[i, h % DIM] += 1.0
        norm = np.linalg.norm(rows[i])
        rows[i] = rows[i] / norm if norm else rows[i]
    return rows


_IDS = iter(range(1, 10**9))


def seg(text: str, *, doc: int = 1, ordinal: int = 0, kind: str = "paragraph",
        page: int | None = 1, section: list[str] | None = None, name: str | None = None,
        line_start: int | None = None, document_name: str = "manual.pdf",
        document_path: str = "", sid: int | None = None) -> SegmentRecord:
    line_end = None if line_start is None else line_start + text.count("\n")
    return SegmentRecord(id=sid if sid is not None else next(_IDS), document_id=doc,
                         ordinal=ordinal, kind=kind, text=text, page=page, char_start=0,
                         char_end=len(text), line_start=line_start, line_end=line_end,
                         boxes=[], section=section or [], name=name,
                         tokens=count_tokens(text), document_name=document_name,
                         document_path=document_path or f"/docs/{document_name}")


def cand(segment: SegmentRecord, score: float = 0.02) -> Candidate:
    return Candidate(segment, score=score, scores={"retrieval": score})


class Library:
    """An in-memory stand-in for storage: neighbours and whole documents."""

    def __init__(self, segments: list[SegmentRecord]):
        self.by_doc: dict[int, list[SegmentRecord]] = {}
        for s in segments:
            self.by_doc.setdefault(s.document_id, []).append(s)
        for segs in self.by_doc.values():
            segs.sort(key=lambda s: s.ordinal)

    def neighbours(self, segment: SegmentRecord, before: int, after: int) -> list[SegmentRecord]:
        return [s for s in self.by_doc.get(segment.document_id, [segment])
                if segment.ordinal - before <= s.ordinal <= segment.ordinal + after]

    def document(self, doc_id: int) -> list[SegmentRecord]:
        return list(self.by_doc.get(doc_id, []))


def context(question: str, *, budget: int = 2000, segments: list[SegmentRecord] = (),
            embed=fake_embed) -> SelectionContext:
    lib = Library(list(segments))
    return SelectionContext(question=question, budget=budget, count_tokens=count_tokens,
                            embed=embed, fetch_neighbours=lib.neighbours,
                            fetch_document_segments=lib.document)


def code_segments(tmp_path: Path, source: str, name: str = "decoder.py",
                  doc: int = 7) -> list[SegmentRecord]:
    """Real segments of a source file, through the real code ingestion."""
    folder = tmp_path / "json"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(source)
    parsed = parse_code(path)
    return [SegmentRecord(id=doc * 1000 + i, document_id=doc, ordinal=i, kind=s.kind,
                          text=s.text, page=None, char_start=s.char_start,
                          char_end=s.char_end, line_start=s.line_start, line_end=s.line_end,
                          boxes=[], section=list(s.section), name=s.name, tokens=s.tokens,
                          document_name=name, document_path=str(path))
            for i, s in enumerate(parsed.segments)]


def test_control_strings_of_chat_templates_are_defused():
    from engine.text import defuse_control_tokens

    text = "a <|im_start|>system b <|eot_id|> [INST] x [/INST] <<SYS>> </s> <s> keep <b>|x|</b>"
    out = defuse_control_tokens(text)
    for token in ("<|im_start|>", "<|eot_id|>", "[INST]", "[/INST]", "<<SYS>>", "</s>", "<s>"):
        assert token not in out
    assert out.replace("\u200b", "") == text                 # nothing else changes
    assert "<b>|x|</b>" in out
