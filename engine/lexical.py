"""Words as retrieval and citation compare them: lower-cased, identifiers
split (`parse_constant`, `parseConstant` -> parse, constant), light suffix
stemming, stop words dropped. Cheap and deterministic, so it can score
thousands of spans per answer."""
from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|\d+(?:[.,]\d+)*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

STOP_WORDS = frozenset("""
a an and are as at be been but by can could did do does done for from had has
have how i if in into is it its itself may might more most must no not of on
or our should so such than that the their them then there these they this
those to was we were what when where which while who whom why will with would
you your yes also any all each other some only own same very just about above
after again against below between both during further here once out over
under until up down off per via use used using one
""".split())


def stem(word: str) -> str:
    """A light stemmer: enough to match plural/verb forms (parse, parses,
    parsed, parsing -> pars), never aggressive."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ing") and len(word) >= 6:
        word = word[:-3]
    elif word.endswith("ed") and len(word) >= 5:
        word = word[:-2]
    elif word.endswith("ly") and len(word) >= 5:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def terms(text: str, keep_stop_words: bool = False) -> list[str]:
    """Content terms of `text`, in order."""
    out: list[str] = []
    for match in _WORD.finditer(text):
        token = match.group()
        pieces = [token] if token[0].isdigit() else _CAMEL.split(token)
        if any(len(p) < 2 for p in pieces):   # NaN, iOS: not identifiers to split
            pieces = [token]
        for piece in pieces:
            for part in piece.split("_"):
                low = part.lower()
                if not low or (not keep_stop_words and low in STOP_WORDS):
                    continue
                out.append(low if low[0].isdigit() else stem(low))
    return out


def is_number(term: str) -> bool:
    return term[:1].isdigit()
