"""BM25 search over the FTS5 index of segment text, section and code name."""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlite_utils

from .spelling import variants

# Common English function words: as OR terms they would match nearly every
# segment and drown the rare words that carry a question.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been
before being below between both but by can could did do does doing down during
each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor
not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves
does don't isn't what's which's i'm i've tell give show find get use using used
""".split())

_WORD = re.compile(r"\w+", re.UNICODE)
# Words joined by in-word punctuation: numbers, identifiers, paths, dates.
_LITERAL = re.compile(r"\w+(?:[.,:/\\\-]+\w+)+", re.UNICODE)
# bm25() column weights: text, section path, code name.
_WEIGHTS = (1.0, 0.5, 2.0)


@dataclass
class FtsHit:
    segment_id: int
    score: float     # bm25: lower is better, as SQLite reports it


def literal_phrases(query: str) -> list[str]:
    """Words joined by punctuation without a space ("$15.000,00",
    "20-22608380-5", "json.loads", "$HOME/.dynare"), as the phrases the
    index holds them as ("15 000 00"). The tokenizer splits them into
    words that are common on their own ("000", "00" are in every row of a
    table of amounts); as a phrase they are rare, so BM25 weighs them as
    the exact literal the person typed."""
    out = []
    for match in _LITERAL.finditer(query):
        words = [w.lower() for w in _WORD.findall(match.group())]
        if len(words) > 1:
            out.append(" ".join(words))
    return list(dict.fromkeys(out))


def match_expression(query: str) -> str | None:
    """Turn free text into a safe FTS5 OR-query of its content words (in
    both spellings, spelling.py) and its literal phrases.

    Quoting every term keeps user punctuation (quotes, dashes, colons)
    from being read as FTS5 syntax.
    """
    words = [w.lower() for w in _WORD.findall(query)]
    content = [w for w in words if w not in STOPWORDS and len(w) > 1] or words
    spelt = [v for w in content for v in variants(w)]     # "licence" finds "license" too
    unique = list(dict.fromkeys(content + spelt)) + literal_phrases(query)
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


def bm25_search(db: sqlite_utils.Database, query: str, *, limit: int = 50,
                document_ids: list[int] | None = None) -> list[FtsHit]:
    expression = match_expression(query)
    if expression is None:
        return []
    weights = ", ".join(str(w) for w in _WEIGHTS)
    sql = f"""SELECT s.id, bm25(segments_fts, {weights}) AS score
              FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
              WHERE segments_fts MATCH ?"""
    params: list = [expression]
    if document_ids:
        sql += f" AND s.document_id IN ({','.join('?' * len(document_ids))})"
        params.extend(document_ids)
    sql += " ORDER BY score LIMIT ?"
    params.append(limit)
    return [FtsHit(row[0], row[1]) for row in db.execute(sql, params).fetchall()]
