"""Words, sentences and lexical relevance for the selection steps.

Questions are phrased in plain words while code says `parse_constant` and
PDFs say "iterations"; matching therefore splits identifiers, folds case and
strips common English endings before terms are compared. Sentences are cut
with exact character offsets so a pruned segment still maps back to the
stored text character by character.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from storage.spelling import american

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been
before being below between both but by can could did do does doing done down
during each either else ever few for from further get gets got had has have
having he her here hers him his how i if in into is it its itself just let me
might more most must my no nor not now of off on once only or other our out
over own per please same shall she should so some such than that the their
them then there these they this those through to too under until up upon us
very via was we were what whatever when where whether which while who whom
whose why will with within without would yet you your
""".split())


def stem(word: str) -> str:
    """A light, predictable stemmer: plural and verb endings only, so that
    "iterations"/"iteration" and "parsing"/"parse" meet; British spellings
    are read as American ones first (storage/spelling.py)."""
    w = american(word.lower())      # "licence" and "license" meet
    if len(w) <= 3 or w.isdigit():
        return w
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""),
                         ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                return w
            if suffix == "es" and not w.endswith(("sses", "xes", "ches", "shes", "zes")):
                continue   # "types" -> "type" via "s", not "typ"
            w = w[: len(w) - len(suffix)] + keep
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]         # "parse"/"pars(ing)" and "use"/"us(ed)" agree
    return w


def split_identifier(word: str) -> list[str]:
    """`parse_constant` -> parse, constant; `JSONDecoder` -> json, decoder."""
    parts: list[str] = []
    for chunk in word.split("_"):
        parts.extend(p.lower() for p in _CAMEL.findall(chunk))
    return [p for p in parts if p]


def term_groups(text: str, *, keep_stopwords: bool = False) -> list[list[str]]:
    """The terms of each word of `text`: an identifier's stemmed parts and,
    when it has several, itself last; a word of stopwords alone gives none."""
    out: list[list[str]] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        parts = split_identifier(word) if not word[0].isdigit() else [word]
        group = [stem(part) for part in parts if keep_stopwords or part not in STOPWORDS]
        if len(parts) > 1:
            group.append(word.lower())
        if group:
            out.append(group)
    return out


def terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Stemmed terms of `text`; an identifier yields its parts and, when it
    has several, itself, so an exact identifier match counts extra."""
    return [t for group in term_groups(text, keep_stopwords=keep_stopwords) for t in group]


def query_terms(question: str) -> list[str]:
    """Distinct terms of the question, in order (stopwords out unless the
    question is nothing but stopwords)."""
    found = terms(question) or terms(question, keep_stopwords=True)
    return list(dict.fromkeys(found))


@dataclass
class LexicalScorer:
    """BM25 over a small pool (the candidates), normalised to [0, 1] by the
    score a text containing every question term would reach."""

    query: list[str]
    idf: dict[str, float]
    avg_len: float
    k1: float = 1.2
    b: float = 0.5

    @classmethod
    def fit(cls, question: str, texts: Iterable[str]) -> "LexicalScorer":
        query = query_terms(question)
        docs = [set(terms(t)) for t in texts]
        lengths = [len(d) for d in docs] or [1]
        n = max(len(docs), 1)
        idf = {}
        for term in query:
            df = sum(1 for d in docs if term in d)
            idf[term] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        return cls(query, idf, max(sum(lengths) / len(lengths), 1.0))

    def score(self, text: str) -> float:
        if not self.query:
            return 0.0
        words = terms(text)
        counts = Counter(words)
        norm = self.k1 * (1 - self.b + self.b * len(words) / self.avg_len)
        total = best = 0.0
        for term in self.query:
            weight = self.idf.get(term, 0.0) + 0.05   # a common term still counts a little
            tf = counts.get(term, 0)
            total += weight * tf * (self.k1 + 1) / (tf + norm) if tf else 0.0
            best += weight
        return min(total / (best * (self.k1 + 1) / (1 + self.k1 * (1 - self.b))), 1.0) if best else 0.0

    def coverage(self, text: str) -> float:
        """Share of the question's idf weight present in `text` (for short
        texts such as sentences, where term frequency means little)."""
        present = set(terms(text))
        weights = {t: self.idf.get(t, 0.0) + 0.05 for t in self.query}
        total = sum(weights.values())
        return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


def token_set(text: str) -> set[str]:
    return set(terms(text))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


# -- sentences ------------------------------------------------------------

ABBREVIATIONS = frozenset("""
e.g i.e cf vs etc al fig figs eq eqs sec ch no nos vol pp p approx resp dr mr
mrs ms prof st jr sr inc ltd co dept est min max ref refs viz ca def
""".split())

# A boundary: sentence punctuation (with closing quotes/brackets) then space;
# a blank line; or a line break before a list bullet.
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_BLANK = re.compile(r"\n[ \t]*\n\s*")
_BULLET = re.compile(r"\n(?=[ \t]*(?:[-*•◦▪–—]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))\s)")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the "." at `dot` ends an abbreviation or an initial."""
    i = dot
    while i > 0 and (text[i - 1].isalpha() or text[i - 1] == "."):
        i -= 1
    word = text[i:dot].lower().strip(".")
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isalpha() and text[dot - 1].isupper()   # "R. A. Fisher"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences of `text` as (start, end) offsets, whitespace trimmed;
    together they cover every non-space character exactly once."""
    cuts: set[int] = set()
    for m in _END.finditer(text):
        end = m.end()
        rest = text[end:].lstrip()
        if not rest:
            continue
        punct = m.group(0)
        if punct.startswith(".") and len(punct.rstrip("\"'”’)]")) == 1:
            if _is_abbreviation(text, m.start()):
                continue
            if rest[0].islower():
                continue            # "see Sec. 3 of the ..." or a cut abbreviation
        cuts.add(end)
    for m in _BLANK.finditer(text):
        cuts.add(m.start())
    for m in _BULLET.finditer(text):
        cuts.add(m.start())
    spans, start = [], 0
    for cut in sorted(cuts) + [len(text)]:
        a, b = start, cut
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
        start = cut
    return spans


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ranges with overlapping or touching ones joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def join_sentences(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Kept sentence spans as ranges, consecutive sentences joined across
    the whitespace between them so their text reads as in the original."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and not text[out[-1][1]:a].strip():
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")


def ends_thought(text: str) -> bool:
    """Whether `text` ends like a finished sentence (a closing ":" or ";"
    announces more, so it does not)."""
    return bool(_SENTENCE_END.search(text.rstrip()))


def starts_continuation(text: str) -> bool:
    """Whether `text` reads as the rest of a sentence begun before it."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0].islower()


def is_number(term: str) -> bool:
    return term[:1].isdigit()


# Chat-template control strings: Qwen/SmolLM/Llama-3 `<|...|>`, Llama-2 and
# Mistral `[INST]`, `<<SYS>>`, `<s>`. Backends tokenize the rendered chat
# with special tokens on, so such a string inside a document would become a
# real control token: a forged end of the system turn, or a new one.
_CONTROL_STRINGS = re.compile(r"<\|[^<>|\s]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>")


def defuse_control_tokens(text: str) -> str:
    """Document text made inert for a chat template: a zero-width space
    after the first character keeps each control string readable but
    unable to match a special token."""
    return _CONTROL_STRINGS.sub(lambda m: m.group()[0] + "\u200b" + m.group()[1:], text)


# Typeset punctuation inside words: "Nelder–Mead", "1–4 hex digits", and
# curly quotes. PDFs are full of them; the default 0.5B model reads the
# plain ASCII forms more reliably (dev set: one answer gained, none lost:
# bench/RESULTS.md). Dashes between spaces stay: they separate clauses.
_WORD_DASH = re.compile(r"(?<=\w)[\u2010\u2011\u2012\u2013\u2014\u2212](?=\w)")
_CURLY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def plain_punctuation(text: str) -> str:
    """Dashes inside words as hyphens, curly quotes as straight ones; the
    same length, so offsets into the text still hold."""
    return _WORD_DASH.sub("-", text).translate(_CURLY)


# Control characters are never text. PDFs whose fonts map glyphs to C1
# codes put them where a bullet or a symbol was ("\x88 be in a standard
# location", "Xeon\x97CPU"). Deleted, not replaced: with a space or a
# bullet in their place the default model still dropped the path after
# one from its answer (dev-11), deleted it did not (bench/RESULTS.md).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text without control characters; tab and newlines stay."""
    return _CONTROLS.sub("", text)
