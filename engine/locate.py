"""Where-questions about code answered with the place itself.

Asked "Where does pathlib create missing parent directories?", a small
model explains what the code does and seldom names where it is; on the dev
set the default 0.5B model named the function in none of its code "where"
answers. So the answer ends with the place: "In `Path.mkdir`
(pathlib.py:1118-1122) [1]." Which place:

- the definition holding the answer's best-cited code line, when that line
  is code that acts: it is the model's own evidence (where the cited window
  also takes in a comment or docstring line, the place is cited on its
  code lines alone, as below);
- otherwise, when the best citation is documentation (a docstring or a
  comment) or there is none, the model picks among the definitions it was
  shown, by the log-probability of each name continuing its answer ("...
  This is done in `"), and the place is cited on that definition's best
  supporting lines. Documentation says what happens, often far from where:
  `SequenceMatcher.__init__`'s docstring describes the junk heuristic that
  `__chain_b` applies, and `raw_decode`'s mentions the extra data that
  `decode` rejects (dev-24, dev-26: the docstrings won the citation, the
  model's pick was right). Where the answer itself names some of those
  definitions as code (`decode`, `JSONDecoder.decode`), the pick is among
  the ones it names. Its lines are the best supporting ones of code alone
  while there are any: a window that takes in a docstring or comment line
  wins on the answer's words, which the documentation echoes, and misses
  the code that does it (`decode`'s def line and docstring over its
  `raise JSONDecodeError("Extra data")`, dev-26 at 850 tokens).

It is only as right as its citation, which the person can open; nothing is
added when the answer already names the place (as a whole word: "json.dumps"
does not name `dump`) and cites it on its code.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

from storage import SegmentRecord
from storage.records import CitationRecord

from .cite import CitedAnswer, Citer, SentenceSupport
from .question_form import asks_where
from .select.base import Source
from .select.code import base_name
from .select.prune_code import CODE_KINDS, documentation_lines

_ASKS_CLASS = re.compile(r"\bclass(?:es)?\b", re.I)

# The answer goes on with this, and the model's choice of name follows it.
PLACE_PROMPT = " This is done in `"

Choose = Callable[[list[str]], "list[float] | None"]


def _lines(segment: SegmentRecord, start: int, end: int) -> set[int]:
    first = segment.text.count("\n", 0, start)
    return set(range(first, segment.text.count("\n", 0, max(start, end - 1)) + 1))


def is_documentation(segment: SegmentRecord, start: int, end: int) -> bool:
    """Every line of segment text [start, end) is docstring or comment."""
    return _lines(segment, start, end) <= documentation_lines(segment.text)


def is_code(segment: SegmentRecord, start: int, end: int) -> bool:
    """No line of segment text [start, end) is docstring or comment."""
    return not _lines(segment, start, end) & documentation_lines(segment.text)


def names_place(answer: str, name: str) -> bool:
    """The answer names the definition as code: `decode`, `decode()` or
    `JSONDecoder.decode` in backticks, or the dotted name written out. A
    bare word does not count: "used to decode a document" is a verb."""
    last = re.escape(name.rsplit(".", 1)[-1])
    return bool(re.search(rf"`(?:[\w.]*\.)?{last}(?:\(\))?`", answer)) or \
        ("." in name and re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", answer) is not None)


def written_out(answer: str, name: str) -> bool:
    """The answer already says `name` (dotted in full), as a whole word:
    "json.dumps" says `dumps` and not `dump`."""
    plain = re.sub(r"[`*]+", "", answer).casefold()
    return re.search(rf"(?<!\w){re.escape(name.casefold())}(?!\w)", plain) is not None


def candidate_places(question: str, sources: list[Source]) -> dict[str, list[SegmentRecord]]:
    """Definitions shown to the model, by name: functions and methods (a
    class only when the question asks for one, or when no function was
    shown), in the order shown."""
    found: dict[str, list[SegmentRecord]] = {}
    for source in sources:
        for seg in source.segments:
            name = base_name(seg.name)  # a function stored in parts is one place
            if seg.kind in CODE_KINDS and name and name != "<module>":
                found.setdefault(name, []).append(seg)
    functions = {n: s for n, s in found.items() if s[0].kind == "code-function"}
    if _ASKS_CLASS.search(question) or not functions:
        return found
    return functions


def _segments(sources: list[Source]) -> dict[int, SegmentRecord]:
    return {seg.id: seg for source in sources for seg in source.segments}


class Locator:
    """Ends a where-answer about code with the place it names."""

    def __init__(self, citer: Citer, choose: Choose | None = None):
        self.citer = citer
        self.choose = choose          # scores names as the answer's next words

    def add(self, question: str, cited: CitedAnswer, sources: list[Source]) -> str:
        """The sentence naming the place, appended to `cited` (text,
        sentences and citations) for a where-question; "" when none applies."""
        if cited.declined or not asks_where(question):
            return ""
        found = self._from_citation(cited, sources)
        if found is not None and not (found[2] and self.choose is not None):
            picked = found[:2]
            if not self._on_code_alone(found[1], sources):
                # the cited window takes in a comment or docstring line: the
                # place is the same, its lines the code that does it
                ids = {i for i, seg in _segments(sources).items()
                       if base_name(seg.name) == found[0]}
                picked = (found[0], self._place_lines(question, cited, ids, sources) or found[1])
        else:
            picked = self._from_model(question, cited, sources) or (found and found[:2])
        if not picked:
            return ""
        name, record = picked
        if written_out(cited.text, name) and (
                self._on_code(name, cited.citations, sources)
                or not self._on_code(name, [record], sources)):
            return ""        # named, and its code already cited (or none to cite)
        sentence = f"In `{name}` ({record.location()}) [{record.label}]."
        start = len(cited.text) + 1
        index = len(cited.sentences)
        record = replace(record, sentence=index, id=None)
        cited.sentences.append(SentenceSupport(start, start + len(sentence), sentence,
                                               [record.label], record.score, True, [record]))
        cited.citations.append(record)
        cited.text = f"{cited.text} {sentence}"
        return f" {sentence}"

    @staticmethod
    def _on_code(name: str, citations: list[CitationRecord], sources: list[Source]) -> bool:
        """Some citation lies on code lines of definition `name`."""
        segments = _segments(sources)
        for c in citations:
            seg = segments.get(c.segment_id)
            if seg is not None and c.line_start is not None and base_name(seg.name) == name \
                    and not is_documentation(seg, c.char_start - seg.char_start,
                                             c.char_end - seg.char_start):
                return True
        return False

    @staticmethod
    def _on_code_alone(record: CitationRecord, sources: list[Source]) -> bool:
        """No line of the cited window is a docstring or comment."""
        seg = _segments(sources).get(record.segment_id)
        return seg is None or is_code(seg, record.char_start - seg.char_start,
                                      record.char_end - seg.char_start)

    def _from_citation(self, cited: CitedAnswer,
                       sources: list[Source]) -> tuple[str, CitationRecord, bool] | None:
        """The best-cited code line's definition, and whether that line is
        documentation rather than code."""
        segments = _segments(sources)
        code = [(c, segments[c.segment_id]) for c in cited.citations
                if c.line_start is not None and c.segment_id in segments
                and segments[c.segment_id].kind in CODE_KINDS
                and base_name(segments[c.segment_id].name)]
        if not code:
            return None
        best, segment = max(code, key=lambda pair: pair[0].score)
        documentation = is_documentation(segment, best.char_start - segment.char_start,
                                         best.char_end - segment.char_start)
        return base_name(segment.name), best, documentation

    def _from_model(self, question: str, cited: CitedAnswer,
                    sources: list[Source]) -> tuple[str, CitationRecord] | None:
        """The model's pick among the definitions shown, cited on its best
        supporting line."""
        places = candidate_places(question, sources)
        if self.choose is None or not places:
            return None
        # Where the answer itself names definitions it was shown, the place
        # is among those: "The `decode` method of the `JSONDecoder` class is
        # used to decode a JSON document from a string that may have
        # extraneous data at the end" copies raw_decode's docstring, and
        # scored over every definition the name after it was raw_decode's
        # (dev-26 at 850 tokens).
        named = {n: segs for n, segs in places.items() if names_place(cited.raw_text, n)}
        places = named or places
        names = list(places)
        scores = self.choose([f"{name}`" for name in names]) if len(names) > 1 else [0.0]
        if not scores:
            return None
        name = names[max(range(len(names)), key=lambda i: scores[i])]
        record = self._place_lines(question, cited, {seg.id for seg in places[name]}, sources)
        return (name, record) if record is not None else None

    def _place_lines(self, question: str, cited: CitedAnswer, ids: set[int],
                     sources: list[Source]) -> CitationRecord | None:
        """The best supporting lines inside segments `ids`: code alone if
        any window of it is there, then windows not all documentation."""
        claim = f"{question} {cited.raw_text}"
        for keep in (is_code, lambda seg, a, b: not is_documentation(seg, a, b), None):
            record = self.citer.best_line(claim, sources, lambda seg, a, b: seg.id in ids
                                          and (keep is None or keep(seg, a, b)))
            if record is not None:
                return record
        return None

