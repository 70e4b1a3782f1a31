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

from .citation_record import BoxRefiner, citation_for
from .code_units import named_units
from .declines import looks_declined, restates
from .select.base import Source
from .sentences import answer_sentences, cited_labels, line_spans, strip_markers
from .support import holds_numbers, new_numbers, term_recall, word_recall
from .text import sentence_spans, term_groups, terms

Embed = Callable[[list[str]], np.ndarray]

DECLINE_TEXT = "I could not find this in the documents."
RESTATED = "the answer only restates the question"     # a decline's reason


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
            lexical = np.array([[word_recall(term_groups(c), s.terms, given, weight)
                                 for s in spans] for c in claims])
        else:
            lexical = np.array([[term_recall(terms(c), s.terms, given, weight) for s in spans]
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
                lifted = np.array([holds_numbers(numbers, asked, s.terms) for s in spans])
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
