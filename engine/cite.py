"""Align each answer sentence with the span of the sources that supports it.

The model's own `[n]` markers are a hint, not the truth: a sentence is
matched first against the sources it cites and, when none of them supports
it, against every selected source. Support is a blend of lexical recall (do
the sentence's content words, numbers above all, occur in the span?) and
embedding similarity. A sentence with no span above the threshold is marked
unsupported; an answer with no supported sentence is declined.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from storage import SegmentRecord
from storage.records import CitationRecord

from .code_units import named_units
from .select.base import Source
from .sentences import answer_sentences, cited_labels, line_spans, strip_markers
from .text import is_number, sentence_spans, term_groups, terms

Embed = Callable[[list[str]], np.ndarray]
# Given the cited segment and a span of its page text, better glyph boxes
# (the app supplies one that reads pymupdf's word positions); None keeps the
# boxes interpolated from the stored line boxes.
BoxRefiner = Callable[[SegmentRecord, int, int], "list[list[float]] | None"]

DECLINE_TEXT = "I could not find this in the documents."
RESTATED = "the answer only restates the question"     # a decline's reason
# Phrases a model uses to give up. The strong ones always are a decline;
# the weak ones only when the sources or the model itself are what the
# phrase is said of: "if a key is not found in fieldnames, it raises
# ValueError" explains code, and so does "the input string does not contain
# enough characters to complete the document" (dev-26): the document there
# is a JSON document, and the string is what lacks something.
_DECLINE_STRONG = re.compile(
    r"\b(?:(?:is|are) not (?:mentioned|specified|stated|discussed|covered)|"
    r"no (?:information|mention|details?)|cannot (?:find|answer|be determined)|"
    r"can't (?:find|answer)|could not find|couldn't find|unable to (?:find|answer|determine)|"
    r"not (?:enough|sufficient) information|i don't know|i do not know)\b", re.I)
_DECLINE_WEAK = re.compile(
    r"\b(?:(?:do|does|did)(?: not|n't) (?:contain|mention|say|provide|specify|include|state|"
    r"discuss|describe|cover|have)|(?:is|are) not (?:provided|given|included|found|available)|"
    r"cannot determine|can't determine)\b", re.I)
_ABOUT_SOURCES = re.compile(
    r"\b(?:sources?|documents?|context|text|excerpts?|passages?|information|manual|paper|"
    r"i|we)\b", re.I)
_PASSIVE = re.compile(r"^(?:is|are)\b", re.I)


def _gives_up(sentence: str) -> bool:
    """A weak phrase with the sources (or "I") as its subject, in the few
    words before it ("The provided text does not mention"), or after a
    passive one ("This is not given in the sources")."""
    for match in _DECLINE_WEAK.finditer(sentence):
        subject = " ".join(sentence[:match.start()].split()[-3:])
        if _ABOUT_SOURCES.search(subject):
            return True
        if _PASSIVE.match(match.group(0)) and _ABOUT_SOURCES.search(sentence[match.end():]):
            return True
    return False


@dataclass
class CiteConfig:
    threshold: float = 0.42         # support needed for a sentence to count
    lexical_weight: float = 0.55    # the rest is embedding cosine
    max_per_sentence: int = 2
    min_terms: int = 2              # shorter sentences ("Yes.") need no support of their own
    attended: int = 2               # most-attended sources taken as cited by unmarked sentences
    hint_margin: float = 0.1        # what a source the model cited (or attended to) adds
    unit_margin: float = 0.1        # what a code unit the question or claim names adds
    by_word: bool = True            # lexical recall a word at a time (identifiers once)
    novel_weight: float = 2.0       # a claim's terms the question lacks weigh this much more
    reference_weight: float = 0.8   # support found in a reference list counts this much
    exact_numbers: bool = True      # a span holding the claim's new numbers supports it (carries_numbers)


@dataclass
class SentenceSupport:
    start: int                      # in the answer text
    end: int
    text: str
    labels: list[int]               # what the model cited
    score: float
    supported: bool
    citations: list[CitationRecord] = field(default_factory=list)


@dataclass
class CitedAnswer:
    text: str                       # the answer as shown (the decline text if declined)
    raw_text: str                   # what the model wrote
    sentences: list[SentenceSupport]
    citations: list[CitationRecord]
    declined: bool
    reason: str = ""                # why it was declined


@dataclass
class _Span:
    source: Source
    start: int                      # in source.text
    end: int
    text: str
    terms: frozenset[str]
    in_references: bool = False     # in a References / Bibliography section
    segment_id: int | None = None


# A reference list names other works: "Mersenne Twister: A 623-dimensionally
# equidistributed uniform pseudo-random number generator" is a paper's title,
# not the manual saying R's generator is equidistributed in 623 dimensions
# (page 504, which the title outscored on the dev set's dev-04).
_REFERENCES = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?\s+)?(?:references|bibliography|"
                         r"works cited|literature cited|further reading)\s*$", re.I)


def in_references(segment: SegmentRecord) -> bool:
    """The segment sits under a reference-list heading."""
    return bool(segment.section) and bool(_REFERENCES.match(segment.section[-1]))


# A sentence that only restates the question still answers it when it takes
# a side: "Yes, X supports Y" or "X does not support Y".
_POLARITY = re.compile(r"\b(?:yes|no|not|never|none|nothing|cannot|can't|doesn't|don't|"
                       r"isn't|aren't|won't|didn't|wasn't|weren't)\b", re.I)


def restates(claim: str, question_terms: frozenset[str]) -> bool:
    """The claim adds no term to the question and takes no side: "The
    configuration file should live on a Unix machine" for "Where should the
    configuration file live on a Unix machine?" asserts nothing, however well
    the sources match its words."""
    return bool(question_terms) and not _POLARITY.search(claim) \
        and set(terms(claim)) <= question_terms


def looks_declined(text: str) -> bool:
    """The model said the sources do not hold the answer."""
    for a, b in answer_sentences(text) or [(0, len(text))]:
        sentence = text[a:b]
        if _DECLINE_STRONG.search(sentence) or _gives_up(sentence):
            return True
    return False


def layout_joined(text: str, sentences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences a blank line cut in two, whole again: PDF lines set far
    apart come out as blocks of one line each ("be in a standard
    location\n\n– $HOME/.dynare under Unix;"), and neither half alone
    carries the claim. A half ends without sentence punctuation and the
    next starts in lower case or with a dash."""
    joined = []
    for (a, b), (c, d) in zip(sentences, sentences[1:]):
        gap = text[b:c]
        if "\n" in gap and not gap.strip() and text[b - 1] not in ".!?:;" \
                and (text[c].islower() or text[c] in "\u2013\u2014-"):
            joined.append((a, d))
    return joined


def _source_spans(source: Source) -> list[_Span]:
    """Sentences of prose, rows of tables, 1- and 3-line windows of code."""
    spans: list[_Span] = []
    offset = 0
    for part in source.parts:
        text = part.text
        kind = part.segment.kind
        if kind.startswith("code"):
            ranges = line_spans(text, 1) + line_spans(text, 3)
        elif kind == "table":
            ranges = line_spans(text, 1)
        else:
            ranges = sentence_spans(text)
            ranges += layout_joined(text, ranges)
        listed = in_references(part.segment)
        for a, b in ranges:
            span_text = text[a:b]
            spans.append(_Span(source, offset + a, offset + b, span_text,
                               frozenset(terms(span_text)), listed, part.segment.id))
        offset += len(text) + len(" … ")
    return spans


def _lexical(sentence_terms: list[str], span_terms: frozenset[str],
             given: frozenset[str] = frozenset(), novel_weight: float = 1.0) -> float:
    """Weighted recall of the sentence's terms in the span. Numbers count
    double (a wrong number is the costliest unsupported claim), and so do
    terms the question did not already hold: "ratio() returns 1.0 when both
    are empty" restates the question but for "1.0", and the span that
    supports it is the one holding 1.0, not a docstring that repeats the
    question's words."""
    if not sentence_terms:
        return 0.0
    weights = [(2.0 if is_number(t) else 1.0) * (1.0 if t in given else novel_weight)
               for t in sentence_terms]
    hit = sum(w for t, w in zip(sentence_terms, weights) if t in span_terms)
    return hit / sum(weights)


def _group_recall(groups: list[list[str]], span_terms: frozenset[str],
                  given: frozenset[str] = frozenset(), novel_weight: float = 1.0) -> float:
    """Weighted recall of the claim's words in the span, a word at a time:
    an identifier counts once, whole when the span has it, else by the
    share of its parts there. Counting `SequenceMatcher` as three terms
    (sequence, matcher, itself) let any line that builds one outweigh the
    line that returns the claimed value (dev-23). Numbers count double,
    and so do words the question did not already hold."""
    if not groups:
        return 0.0
    hit = total = 0.0
    for group in groups:
        weight = (2.0 if is_number(group[0]) else 1.0) * \
            (1.0 if set(group) <= given else novel_weight)
        if len(group) > 1 and group[-1] in span_terms:
            credit = 1.0
        else:
            parts = group[:-1] if len(group) > 1 else group
            credit = sum(t in span_terms for t in parts) / len(parts)
        hit += weight * credit
        total += weight
    return hit / total


def new_numbers(claim_terms: set[str], asked: frozenset[str]) -> set[str]:
    """The numbers of three characters or more the claim adds to the question."""
    return {t for t in claim_terms if is_number(t) and len(t) >= 3 and t not in asked}


def _holds(numbers: set[str], asked: frozenset[str], span_terms: frozenset[str]) -> bool:
    return bool(numbers) and numbers <= span_terms and bool((asked - numbers) & span_terms)


def carries_numbers(claim_terms: set[str], asked: frozenset[str],
                    span_terms: frozenset[str]) -> bool:
    """The span holds every number of three characters or more that the
    claim adds to the question, beside a word of the question. A number
    copied exactly is support in itself where the embedding says little: a
    report row "2 BIN2 BS 665.34296 .08000 ." for "the optimal activity
    for the column BIN2 is shown as 665.34296" scored 0.417 against the
    0.42 threshold, and that right answer was withheld (dev-18)."""
    return _holds(new_numbers(claim_terms, asked), asked, span_terms)


def _line_of(segment: SegmentRecord, offset: int) -> int | None:
    if segment.line_start is None:
        return None
    return segment.line_start + segment.text.count("\n", 0, offset)


def interpolated_boxes(segment: SegmentRecord, start: int, end: int) -> list[list[float]]:
    """Boxes of page-text span [start, end) from the stored line boxes: whole
    lines inside it, and the covered fraction of lines it cuts."""
    boxes = []
    for box in segment.boxes:
        lo, hi = max(start, box.start), min(end, box.end)
        if lo >= hi:
            continue
        length = max(1, box.end - box.start)
        width = box.x1 - box.x0
        x0 = box.x0 + width * (lo - box.start) / length
        x1 = box.x0 + width * (hi - box.start) / length
        boxes.append([round(x0, 2), round(box.y0, 2), round(x1, 2), round(box.y1, 2)])
    return boxes


def citation_for(source: Source, start: int, end: int, sentence: int, score: float,
                 refine: BoxRefiner | None = None) -> CitationRecord | None:
    """A citation record for span [start, end) of a source's text (the first
    segment it touches: a sentence rarely crosses segments)."""
    located = source.locate(start, end)
    if not located:
        return None
    part, seg_start, seg_end = located[0]
    segment = part.segment
    char_start, char_end = segment.char_start + seg_start, segment.char_start + seg_end
    boxes: list[list[float]] = []
    if segment.page is not None:
        boxes = (refine(segment, char_start, char_end) if refine else None) \
            or interpolated_boxes(segment, char_start, char_end)
    return CitationRecord(
        label=source.label, sentence=sentence, document_id=segment.document_id,
        document_name=segment.document_name, document_path=segment.document_path,
        segment_id=segment.id, page=segment.page,
        line_start=_line_of(segment, seg_start),
        line_end=_line_of(segment, max(seg_start, seg_end - 1)),
        char_start=char_start, char_end=char_end,
        quote=segment.text[seg_start:seg_end], boxes=boxes, score=round(score, 4))


class Citer:
    """Finds the supporting span of every answer sentence."""

    def __init__(self, config: CiteConfig | None = None, embed: Embed | None = None,
                 refine: BoxRefiner | None = None):
        self.config = config or CiteConfig()
        self.embed = embed
        self.refine = refine

    def _scores(self, claims: list[str], spans: list[_Span],
                given: frozenset[str] = frozenset()) -> np.ndarray:
        """[claims x spans] support scores; `given`: the question's terms."""
        weight = self.config.novel_weight if given else 1.0
        if self.config.by_word:
            lexical = np.array([[_group_recall(term_groups(c), s.terms, given, weight)
                                 for s in spans] for c in claims])
        else:
            lexical = np.array([[_lexical(terms(c), s.terms, given, weight) for s in spans]
                                for c in claims])
        weights = np.array([self.config.reference_weight if s.in_references else 1.0
                            for s in spans])
        if self.embed is None or not spans:
            return lexical * weights
        vectors = self.embed(claims + [s.text for s in spans])
        cosine = np.clip(vectors[:len(claims)] @ vectors[len(claims):].T, 0.0, 1.0)
        w = self.config.lexical_weight
        return (w * lexical + (1 - w) * cosine) * weights

    def cite(self, answer: str, sources: list[Source],
             attention: dict[int, float] | None = None, question: str = "") -> CitedAnswer:
        """`question`: the claim's terms it lacks are what a span must hold.
        `attention` (label -> attention mass the answer gave the source,
        from the sparse engine): a sentence without `[n]` markers treats the
        sources the model attended to most as if it had cited them; either
        way a cited source's spans only get `hint_margin` on top, and every
        source competes."""
        config = self.config
        attended = sorted(attention, key=lambda label: -attention[label])[:config.attended] \
            if attention else []
        ranges = answer_sentences(answer)
        sentences = [SentenceSupport(a, b, answer[a:b], cited_labels(answer[a:b]), 0.0, False)
                     for a, b in ranges]
        if looks_declined(answer) or not sources:
            reason = "the model said the sources do not contain the answer" \
                if sources else "no source was selected"
            return CitedAnswer(answer if sources else DECLINE_TEXT, answer, sentences, [],
                               True, reason)
        spans = [span for source in sources for span in _source_spans(source)]
        claims = [strip_markers(s.text) for s in sentences]
        asked = frozenset(terms(question))
        scores = self._scores(claims, spans, asked) if spans and claims \
            else np.zeros((len(claims), 0))
        by_label = {source.label: source for source in sources}
        segments = list({p.segment.id: p.segment for src in sources for p in src.parts}.values())
        citations: list[CitationRecord] = []
        empty = 0
        for index, (sentence, claim) in enumerate(zip(sentences, claims)):
            if len(terms(claim)) < config.min_terms or not spans:
                sentence.supported = bool(spans)   # too short to carry a claim of its own
                continue
            if restates(claim, asked):
                empty += 1
                continue
            hinted = set(sentence.labels or attended) & set(by_label)
            # The model's markers are a hint, not a verdict: a small model
            # often numbers the wrong source, so a hinted span wins only
            # within `hint_margin` of the best span anywhere.
            row = scores[index]
            numbers = new_numbers(set(terms(claim)), asked) if config.exact_numbers else set()
            if numbers:         # carries_numbers, the claim's part worked out once
                lifted = np.array([_holds(numbers, asked, s.terms) for s in spans])
                row = np.where(lifted, np.maximum(row, config.threshold), row)
            boost = np.array([config.hint_margin if s.source.label in hinted else 0.0
                              for s in spans])
            # Code: the functions the question or the claim names (and the
            # helpers they call) hold the lines that say what they do.
            focus = named_units(f"{question}\n{claim}", segments) if config.unit_margin else set()
            if focus:
                boost += np.array([config.unit_margin if s.segment_id in focus else 0.0
                                   for s in spans])
            # ranked with the hint; the support threshold is on the span alone
            ranked = np.where(row >= config.threshold, row + boost, -np.inf)
            chosen = self._best(ranked, range(len(spans)), spans)
            sentence.score = float(row[chosen[0]]) if chosen else 0.0
            sentence.supported = sentence.score >= config.threshold
            if not sentence.supported:
                continue
            for i in chosen:
                span = spans[i]
                record = citation_for(span.source, span.start, span.end, index, float(row[i]),
                                      self.refine)
                if record:
                    sentence.citations.append(record)
                    citations.append(record)
        if not any(s.supported and s.citations for s in sentences):
            if empty and empty == sum(len(terms(c)) >= config.min_terms for c in claims):
                return CitedAnswer(DECLINE_TEXT, answer, sentences, [], True, RESTATED)
            return CitedAnswer(DECLINE_TEXT, answer, sentences, [], True,
                               "no sentence of the answer is supported by the sources")
        return CitedAnswer(answer, answer, sentences, citations, False)

    def best_line(self, claim: str, sources: list[Source],
                  keep: Callable[[SegmentRecord, int, int], bool]) -> CitationRecord | None:
        """The span that best supports `claim` among those `keep` accepts
        (segment, start, end in its text). No threshold: the caller has
        already chosen the place and wants its best lines."""
        spans = []
        for span in (s for source in sources for s in _source_spans(source)):
            located = span.source.locate(span.start, span.end)
            if located and keep(located[0][0].segment, located[0][1], located[0][2]):
                spans.append(span)
        if not spans:
            return None
        row = self._scores([claim], spans)[0]
        best = int(row.argmax())
        return citation_for(spans[best].source, spans[best].start, spans[best].end, 0,
                            float(row[best]), self.refine)

    def _best(self, row: np.ndarray, indices, spans: list[_Span]) -> list[int]:
        """The best span above the threshold, plus a near-equal one from
        another source (a claim both sources make)."""
        ranked = sorted(indices, key=lambda i: -row[i])
        chosen: list[int] = []
        labels: set[int] = set()
        for i in ranked:
            if row[i] < self.config.threshold or len(chosen) >= self.config.max_per_sentence:
                break
            if spans[i].source.label in labels:
                continue
            if chosen and row[i] < row[chosen[0]] - 0.05:
                break
            chosen.append(i)
            labels.add(spans[i].source.label)
        return chosen


class MarkerCiter(Citer):
    """What common local RAG apps do: trust the model's `[n]` markers and
    cite each marked source whole. The QA evaluation's baseline."""

    def cite(self, answer: str, sources: list[Source],
             attention: dict[int, float] | None = None, question: str = "") -> CitedAnswer:
        ranges = answer_sentences(answer)
        sentences = [SentenceSupport(a, b, answer[a:b], cited_labels(answer[a:b]), 0.0, True)
                     for a, b in ranges]
        declined = looks_declined(answer) or not sources or not answer.strip()
        by_label = {source.label: source for source in sources}
        citations: list[CitationRecord] = []
        if not declined:
            for index, sentence in enumerate(sentences):
                for label in sentence.labels:
                    source = by_label.get(label)
                    if source is None:
                        continue
                    record = citation_for(source, 0, len(source.parts[0].text), index, 0.0)
                    if record:
                        sentence.citations.append(record)
                        citations.append(record)
        return CitedAnswer(answer or DECLINE_TEXT, answer, sentences, citations, declined,
                           "the model declined" if declined else "")
