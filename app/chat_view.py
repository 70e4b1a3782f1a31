"""The conversation as HTML (answers with citation chips and a sources list)
and as Markdown for export.

A chip is `<button class="folio-chip" data-cite="TURN:LABEL:SENTENCE">[n]</button>`;
the page's click handler sends that key back, and `find_citation` turns it
into the citation to inspect. Chips come from the model's own `[n]` markers
and, where the citer found support the model did not mark, from the stored
citations of that sentence, so every cited span is reachable.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from storage.records import CitationRecord, TurnRecord

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_CODE = re.compile(r"`([^`\n]+)`")


@dataclass
class TurnView:
    """One question and its answer, stored or still being written."""

    key: str                          # the turn id, or "live" while streaming
    question: str
    answer: str = ""
    status: str = "done"              # "writing", "done", "stopped", "error",
                                      # "answering" (stored, in progress), "interrupted"
    stage: str = ""                   # what the engine is doing while writing
    declined: bool = False
    reason: str = ""
    citations: list[CitationRecord] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    sentences: list[dict] = field(default_factory=list)
    model: str = ""

    @classmethod
    def from_turn(cls, turn: TurnRecord) -> "TurnView":
        meta = turn.metadata or {}
        return cls(key=str(turn.id), question=turn.question, answer=turn.answer,
                   status=turn.status, declined=turn.declined, reason=meta.get("reason", ""),
                   citations=list(turn.citations), sources=list(meta.get("sources", [])),
                   sentences=list(meta.get("sentences", [])), model=turn.model)


def _inline(text: str) -> str:
    """Escape, then `code` spans and line breaks; nothing else is trusted."""
    escaped = html.escape(text)
    escaped = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    return escaped.replace("\n", "<br>")


def chip(turn_key: str, label: int, sentence: int, supported: bool = True) -> str:
    cls = "folio-chip" if supported else "folio-chip folio-chip-weak"
    return (f'<button type="button" class="{cls}" data-cite="{html.escape(turn_key)}:'
            f'{label}:{sentence}" title="show source {label}">[{label}]</button>')


def _with_chips(text: str, turn_key: str, sentence: int, cited: set[int],
                clickable: bool, valid: set[int] | None = None) -> tuple[str, set[int]]:
    """`text` with its [n] markers as chips; returns the labels shown. A
    marker naming no source the model was given stays plain text."""
    out, shown, pos = [], set(), 0
    for m in _MARKER.finditer(text):
        out.append(_inline(text[pos:m.start()]))
        labels = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        if clickable:
            out.append("".join(
                chip(turn_key, n, sentence, n in cited) if valid is None or n in valid
                else f'<span class="folio-nosource" title="no source [{n}] was given">[{n}]'
                     f'</span>' for n in labels))
        else:
            out.append(html.escape(m.group(0)))
        shown.update(labels)
        pos = m.end()
    out.append(_inline(text[pos:]))
    return "".join(out), shown


def answer_html(turn: TurnView) -> str:
    """The answer text with chips; sentence by sentence when offsets are known."""
    text = turn.answer
    clickable = turn.key != "live"
    valid = ({s.get("label") for s in turn.sources} | {c.label for c in turn.citations}
             if turn.sources or turn.citations else None)
    by_sentence: dict[int, list[CitationRecord]] = {}
    for c in turn.citations:
        by_sentence.setdefault(c.sentence, []).append(c)
    spans = [(s.get("start", 0), s.get("end", 0)) for s in turn.sentences]
    usable = (not turn.declined and spans and all(0 <= a <= b <= len(text) for a, b in spans))
    if not usable:
        body, _ = _with_chips(text, turn.key, -1, {c.label for c in turn.citations}, clickable,
                              valid)
        return body
    parts, pos = [], 0
    for index, (start, end) in enumerate(spans):
        if start > pos:
            parts.append(_inline(text[pos:start]))
        cited = by_sentence.get(index, [])
        labels = {c.label for c in cited}
        body, shown = _with_chips(text[start:end], turn.key, index, labels, clickable, valid)
        extra = sorted(labels - shown)
        if extra and clickable:
            body += "".join(chip(turn.key, n, index) for n in extra)
        parts.append(body)
        pos = max(pos, end)
    parts.append(_inline(text[pos:]))
    return "".join(parts)


def _location(source: dict) -> str:
    if source.get("page"):
        pages = source.get("pages") or [source["page"]]
        return f"p. {pages[0]}" + (f"-{pages[-1]}" if len(pages) > 1 else "")
    if source.get("line_start"):
        return f"lines {source['line_start']}-{source.get('line_end') or source['line_start']}"
    return ""


def sources_html(turn: TurnView) -> str:
    """Every source the model saw, with its selection score and, when the
    answer leaned on it, the best support score of its cited spans."""
    if not turn.sources:
        return ""
    support: dict[int, float] = {}
    for c in turn.citations:
        support[c.label] = max(support.get(c.label, 0.0), c.score)
    rows = []
    for s in turn.sources:
        label = s.get("label")
        used = label in support
        score = (f'<span class="folio-support">support {support[label]:.2f}</span>' if used
                 else '<span class="folio-support folio-unused">not cited</span>')
        name = html.escape(str(s.get("document_name", "")))
        where = html.escape(_location(s))
        link = (f'<button type="button" class="folio-source-link" '
                f'data-cite="{html.escape(turn.key)}:{label}:-1">[{label}] {name}</button>'
                if turn.key != "live" else f"[{label}] {name}")
        rows.append(f'<li>{link} <span class="folio-where">{where}</span> {score} '
                    f'<span class="folio-score">retrieval {float(s.get("score", 0)):.3f}, '
                    f'{int(s.get("tokens", 0))} tokens</span></li>')
    return (f'<details class="folio-sources" open><summary>Sources ({len(turn.sources)})</summary>'
            f'<ol>{"".join(rows)}</ol></details>')


INTERRUPTED = "Folio stopped before this answer was finished; ask again"


def turn_html(turn: TurnView) -> str:
    status = ""
    if turn.status == "writing":
        status = f'<div class="folio-stage">{html.escape(turn.stage or "working")}…</div>'
    elif turn.status == "stopped":
        status = '<div class="folio-stage">stopped</div>'
    elif turn.status == "answering":        # stored, still being answered elsewhere
        status = '<div class="folio-stage">being answered…</div>'
    elif turn.status == "interrupted":
        status = f'<div class="folio-error">{INTERRUPTED}</div>'
    elif turn.status == "error":
        status = f'<div class="folio-error">{html.escape(turn.reason)}</div>'
    note = ""
    if turn.declined and turn.reason and turn.status != "error":
        note = f'<div class="folio-note">{html.escape(turn.reason)}</div>'
    answer = answer_html(turn) if turn.answer else ""
    return (f'<div class="folio-turn" data-turn="{html.escape(turn.key)}" '
            f'data-status="{turn.status}">'
            f'<div class="folio-q">{_inline(turn.question)}</div>'
            f'<div class="folio-a">{answer}{status}{note}</div>'
            f'{sources_html(turn) if turn.status != "writing" else ""}</div>')


EMPTY_CHAT = (
    '<div class="folio-empty"><h3>Ask your documents</h3>'
    '<p>Add PDFs, code files, folders or a zip in the <b>Library</b> (drop them anywhere '
    'on this page), then type a question below and press <kbd>Enter</kbd>. Every answer '
    'cites its sources: click a <span class="folio-chip">[1]</span> to see the exact words '
    'on the page or the lines of code.</p></div>')


def conversation_html(turns: list[TurnView]) -> str:
    if not turns:
        return EMPTY_CHAT
    return f'<div class="folio-chat">{"".join(turn_html(t) for t in turns)}</div>'


def parse_cite_key(key: str) -> tuple[int, int, int] | None:
    """`"12:2:0"` → (turn 12, label 2, sentence 0); None when malformed."""
    try:
        turn, label, sentence = key.split(":")
        return int(turn), int(label), int(sentence)
    except (AttributeError, ValueError):
        return None


def find_citation(turn: TurnView, label: int, sentence: int) -> CitationRecord | None:
    """The citation a chip means: same label and sentence, else the label's
    strongest span."""
    same = [c for c in turn.citations if c.label == label]
    exact = [c for c in same if c.sentence == sentence]
    pool = exact or same
    return max(pool, key=lambda c: c.score) if pool else None


def citation_line(c: CitationRecord) -> str:
    quote = " ".join(c.quote.split())
    if len(quote) > 200:
        quote = quote[:197] + "..."
    return f'[{c.label}] {c.location()}: "{quote}" (support {c.score:.2f})'


def conversation_markdown(title: str, turns: list[TurnView]) -> str:
    """The conversation with every answer's citations and sources, as Markdown."""
    out = [f"# {title or 'Folio conversation'}", ""]
    for turn in turns:
        out += [f"## {turn.question}", "", turn.answer or "_(no answer)_", ""]
        if turn.status == "stopped":
            out += ["_(stopped before the end)_", ""]
        if turn.status == "interrupted":
            out += [f"_({INTERRUPTED})_", ""]
        if turn.declined and turn.reason:
            out += [f"_({turn.reason})_", ""]
        seen: set[tuple[int, int]] = set()
        cites = []
        for c in turn.citations:
            if (c.label, c.char_start) in seen:
                continue
            seen.add((c.label, c.char_start))
            cites.append(f"- {citation_line(c)}")
        if cites:
            out += ["**Citations**", "", *cites, ""]
        if turn.sources:
            out += ["**Sources**", ""]
            out += [f"- [{s.get('label')}] {s.get('document_name', '')} {_location(s)} "
                    f"(retrieval score {float(s.get('score', 0)):.3f})" for s in turn.sources]
            out.append("")
    return "\n".join(out).rstrip() + "\n"
