"""PruneTable: a long table keeps its column names and the rows the
question names. Asked for "the CUIT of the donor who gave $15.000,00", a
0.5B model reading ten rows of names, ids and amounts copies a CUIT from
the wrong row; the one row holding "15.000" is the answer. Only when few
rows stand out is the table cut: a question about the whole table ("who
gave the most?") matches every row alike, and the table stays whole.
Pipe tables only: their rows are lines, so a kept row is a whole record
(and reads as one: tables.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Candidate, SelectionContext
from .tables import table_rows
from ..text import LexicalScorer, merge_ranges


@dataclass
class PruneTable:
    name: str = "prune-table"
    min_rows: int = 6           # shorter tables stay whole
    ratio: float = 0.8          # rows matching within this share of the best row are kept
    max_share: float = 0.25     # ...unless more than this share of the rows do

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        for cand in candidates:
            if cand.segment.kind == "table" and cand.kept is None:
                kept = self.rows_for(cand.segment.text, ctx.question)
                if kept is not None:
                    cand.kept = kept
        return candidates

    def rows_for(self, text: str, question: str) -> list[tuple[int, int]] | None:
        """The header and the standing-out rows, or None to keep it whole."""
        head, body = table_rows(text)
        if len(body) < self.min_rows:
            return None
        # idf over this table's rows: a word in every row ("EFECTIVO", "00") says nothing
        scorer = LexicalScorer.fit(question, [text[a:b] for a, b in body])
        scores = [scorer.coverage(text[a:b]) for a, b in body]
        best = max(scores)
        chosen = [r for r, s in zip(body, scores) if best > 0 and s >= self.ratio * best]
        if not chosen or len(chosen) > self.max_share * len(body):
            return None
        kept = merge_ranges(head + chosen)
        a, b = kept[-1]
        kept[-1] = (a, len(text[:b].rstrip("\n")))     # no line break before the next source
        return kept
