"""Scoring one answer against the QA set's gold, by the set's README:
answer containment (normalised; unanswerable items must be declined),
retrieval hit (the gold page or lines inside the selected sources),
evidence hit (the gold evidence quote itself inside the text the model was
shown: pruning can keep a page and drop the sentence that answers),
citation accuracy (a cited span on the gold page or lines), and the run's
summary. qa_eval.py runs the set; this module only reads its results."""
from __future__ import annotations

import re
import statistics
import unicodedata

_TRANS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u00a0": " ",
})


def loose(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_TRANS).casefold()
    return re.sub(r"\s+", " ", text).strip()


def contains(haystack: str, needle: str) -> bool:
    """The set's containment rule (README: NFKC, casefold, ASCII quotes and
    dashes, collapsed whitespace; punctuation is kept, so the alias
    "~/.dynare" is not found in an answer that merely says "DYNARE"). The
    answer is read as the app shows it: Markdown's code backticks are
    formatting, not text ("the `ArgumentParser` constructor")."""
    return bool(needle.strip()) and loose(needle) in loose(haystack.replace("`", ""))


def selected_locations(sources) -> tuple[set[int], list[tuple[int, int]]]:
    """Pages and line ranges of the segments the model was shown."""
    pages: set[int] = set()
    lines: list[tuple[int, int]] = []
    for source in sources:
        if source.page is not None:
            pages.add(source.page)
        # the lines actually shown: a pruned function keeps some of its
        # lines, so the source's first-to-last span would overstate it
        lines.extend((a, b) for a, b in source.line_ranges)
    return pages, lines


def covers(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(any(a <= line <= b for a, b in ranges) for line in range(start, end + 1))


def retrieval_hit(item: dict, sources) -> bool:
    """The gold page (every page a selected source spans) or the gold lines
    (covered by the selected line ranges) inside the selected sources."""
    pages, lines = selected_locations(sources)
    if item["kind"] == "pdf":
        # Pages of all selected segments (a merged source spans several pages).
        pages |= {page for s in sources for page in s.pages}
        return item["page"] in pages
    return covers(lines, *item["lines"])


# Markdown table cells and the joins between kept pieces of a source are
# layout, not words: the evidence of a table row is quoted from the page text.
_LAYOUT = re.compile(r"[|]|-{3,}| \u2026 ")


def _words(text: str) -> list[str]:
    return loose(_LAYOUT.sub(" ", text)).split()


def evidence_share(item: dict, sources) -> float:
    """Share of the gold evidence's word 4-grams found in the text of the
    selected sources, as the model read it."""
    words = _words(item.get("evidence", ""))
    if not words:
        return 0.0
    shown = " " + " ".join(_words("\n".join(s.text for s in sources))) + " "
    grams = [" ".join(words[i:i + 4]) for i in range(max(1, len(words) - 3))]
    return sum(f" {g} " in shown for g in grams) / len(grams)


def evidence_hit(item: dict, sources, share: float = 0.8) -> bool:
    """The evidence quote is in the context (most of it: a line break can
    split a hyphenated word the quote has whole)."""
    return evidence_share(item, sources) >= share


def gold_in_segment(item: dict, segment) -> bool:
    """Whether a stored segment holds (part of) the gold location."""
    if item["kind"] == "pdf":
        return segment.page == item["page"]
    start, end = item["lines"]
    return (segment.line_start is not None and segment.line_start <= end
            and (segment.line_end or segment.line_start) >= start)


def answer_found(item: dict, text: str, declined: bool) -> bool:
    """The gold answer or an alias inside an answer that was not declined."""
    answers = [item["answer"], *item.get("answer_aliases", [])]
    return not declined and any(contains(text, a) for a in answers)


def score_item(item: dict, result, doc_id: int) -> dict:
    unanswerable = item["answer"] == "UNANSWERABLE"
    row = {"id": item["id"], "type": item["type"], "doc": item["doc"],
           "declined": result.declined, "answer": result.text, "raw_answer": result.raw_text,
           "budget": result.budget,
           "ttft_s": result.ttft_s, "total_s": result.total_s,
           "context_tokens": result.context_tokens, "prompt_tokens": result.prompt_tokens,
           "sources": len(result.sources)}
    if getattr(result, "continued_from", ""):   # a restatement, continued (qa.py go_on)
        row["continued_from"] = result.continued_from
    if unanswerable:
        row["answer_ok"] = result.declined
        row["retrieval_hit"] = row["evidence_hit"] = row["citation_ok"] = None
        return row
    # the app's answer as the person reads it (README); beside it, the
    # model's own words, without what Folio adds (the cited place, locate.py)
    row["answer_ok"] = answer_found(item, result.text, result.declined)
    row["model_answer_ok"] = answer_found(item, result.raw_text, result.declined)
    row["retrieval_hit"] = retrieval_hit(item, result.sources)
    row["evidence_hit"] = evidence_hit(item, result.sources)
    if item["kind"] == "pdf":
        row["citation_ok"] = any(c.document_id == doc_id and c.page == item["page"]
                                 for c in result.citations)
    else:
        start, end = item["lines"]
        row["citation_ok"] = any(c.document_id == doc_id and c.line_start is not None
                                 and c.line_start <= end and (c.line_end or c.line_start) >= start
                                 for c in result.citations)
    return row


def summarize(rows: list[dict]) -> dict:
    def rate(key, subset):
        values = [r[key] for r in subset if r.get(key) is not None]   # older runs lack some
        return round(sum(values) / len(values), 3) if values else None

    answerable = [r for r in rows if r["type"] != "unanswerable"]
    unanswerable = [r for r in rows if r["type"] == "unanswerable"]
    return {
        "items": len(rows),
        "retrieval_hit": rate("retrieval_hit", answerable),
        "evidence_hit": rate("evidence_hit", answerable),
        "answer_accuracy": rate("answer_ok", answerable),
        "model_answer_accuracy": rate("model_answer_ok", answerable),
        "citation_accuracy": rate("citation_ok", answerable),
        "declined_unanswerable": rate("answer_ok", unanswerable),
        "overall_accuracy": rate("answer_ok", rows),
        "median_ttft_s": round(statistics.median(r["ttft_s"] for r in rows), 2) if rows else None,
        "median_total_s": round(statistics.median(r["total_s"] for r in rows), 2) if rows else None,
        "mean_context_tokens": round(statistics.mean(r["context_tokens"] for r in rows)) if rows else None,
    }
