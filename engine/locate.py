"""Where-questions about code answered with the place itself.

Asked "Where does pathlib create missing parent directories?", a small
model explains what the code does and seldom names where it is; on the dev
set the default 0.5B model named the function in none of its code "where"
answers. The citation step has already found the lines that support the
answer, and the code segment holding them is stored with its definition's
name, so the answer can end with that place: "In `Path.mkdir`
(pathlib.py:1118-1122) [1]." It is only as right as the citation, which
the person can open; nothing is added when no code line was cited or the
answer already names the place.
"""
from __future__ import annotations

import re
from dataclasses import replace

from storage.records import CitationRecord

from .cite import CitedAnswer, SentenceSupport
from .select.base import Source
from .select.prune_code import CODE_KINDS

# "Where does ...", "In which function ...", "Which part of difflib ...",
# "What function handles ..."
_ASKS_WHERE = re.compile(
    r"^\W*(?:where\b|(?:in\s+)?(?:which|what)\s+(?:part|function|method|class|module|"
    r"file|code|routine)s?\b)", re.I)


def asks_where(question: str) -> bool:
    """The question asks for a place, not an explanation."""
    return bool(_ASKS_WHERE.search(question))


def _plain(text: str) -> str:
    return re.sub(r"[`*_\s]+", "", text).casefold()


def add_location(question: str, cited: CitedAnswer, sources: list[Source]) -> str:
    """The sentence naming the cited definition, appended to `cited` (text,
    sentences and citations) for a where-question; "" when none applies."""
    if cited.declined or not asks_where(question):
        return ""
    segments = {seg.id: seg for source in sources for seg in source.segments}

    def place(c: CitationRecord) -> str | None:
        seg = segments.get(c.segment_id)
        return seg.name if seg is not None and seg.kind in CODE_KINDS else None

    code = [c for c in cited.citations if c.line_start is not None and place(c)]
    if not code:
        return ""
    best = max(code, key=lambda c: c.score)
    name = place(best)
    if _plain(name) in _plain(cited.text):
        return ""
    sentence = f"In `{name}` ({best.location()}) [{best.label}]."
    start = len(cited.text) + 1
    index = len(cited.sentences)
    record = replace(best, sentence=index, id=None)
    cited.sentences.append(SentenceSupport(start, start + len(sentence), sentence, [best.label],
                                           best.score, True, [record]))
    cited.citations.append(record)
    cited.text = f"{cited.text} {sentence}"
    return f" {sentence}"
