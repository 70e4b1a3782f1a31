"""PruneSentences: a long paragraph often holds one answering sentence;
keeping it with its neighbours (for the sentence's subject and what follows)
and dropping the rest lets more sources fit in a small window."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Candidate, SelectionContext
from ..text import LexicalScorer, join_sentences, sentence_spans
from .vectors import question_vector, text_vectors

WHOLE_KINDS = frozenset({"table", "heading", "code-function", "code-class", "code-block"})


def prunable(candidate: Candidate) -> bool:
    """Prose only: tables lose meaning when cut and code is ranked as units."""
    return candidate.segment.kind not in WHOLE_KINDS and candidate.kept is None


def score_sentences(candidates: list[Candidate], ctx: SelectionContext, scorer: LexicalScorer,
                    dense_weight: float, use_embeddings: bool = True) -> None:
    """Fill `candidate.sentences` with (start, end, relevance) for each."""
    spans = {id(c): sentence_spans(c.segment.text) for c in candidates}
    texts = [c.segment.text[a:b] for c in candidates for a, b in spans[id(c)]]
    qv = question_vector(ctx) if use_embeddings else None
    vectors = text_vectors(texts, ctx) if qv is not None and texts else None
    cosines = list(vectors @ qv) if vectors is not None else [0.0] * len(texts)
    weight = dense_weight if vectors is not None else 0.0
    i = 0
    for cand in candidates:
        scored = []
        for a, b in spans[id(cand)]:
            lex = scorer.coverage(cand.segment.text[a:b])
            scored.append((a, b, weight * float(cosines[i]) + (1 - weight) * lex))
            i += 1
        cand.sentences = scored


def keep_ranges(text: str, sentences: list[tuple[int, int, float]], ratio: float,
                window: int) -> list[tuple[int, int]]:
    """Sentences within `ratio` of the best, with `window` neighbours each
    side, as joined ranges; the best sentence is always among them."""
    best = max(range(len(sentences)), key=lambda i: sentences[i][2])
    top = sentences[best][2]
    keep = {best} | {i for i, s in enumerate(sentences) if top > 0 and s[2] >= ratio * top}
    for i in list(keep):
        keep.update(range(max(0, i - window), min(len(sentences), i + window + 1)))
    return join_sentences(text, [sentences[i][:2] for i in sorted(keep)])


@dataclass
class PruneSentences:
    """Sentence relevance is lexical by default: embedding every sentence
    of two dozen segments costs seconds on a small CPU, more than the
    whole selection may take; `use_embeddings=True` adds cosine for the
    benchmarks to weigh."""

    name: str = "prune"
    ratio: float = 0.5          # keep sentences scoring at least this share of the best
    window: int = 1             # neighbours kept each side of a kept sentence
    min_tokens: int = 60        # shorter segments stay whole
    min_saving: float = 0.2     # prune only when this share of the text goes
    limit: int = 16             # only the first candidates (the likely packed ones)
    dense_weight: float = 0.5
    use_embeddings: bool = False

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        targets = [c for c in candidates[: self.limit] if c.role == "hit" and prunable(c)
                   and ctx.count_tokens(c.segment.text) >= self.min_tokens]
        if not targets:
            return candidates
        scorer = LexicalScorer.fit(ctx.question, [c.segment.text for c in candidates])
        score_sentences(targets, ctx, scorer, self.dense_weight, self.use_embeddings)
        for cand in targets:
            text = cand.segment.text
            if len(cand.sentences or []) < 3:
                continue
            ranges = keep_ranges(text, cand.sentences, self.ratio, self.window)
            kept_chars = sum(b - a for a, b in ranges)
            if kept_chars > (1 - self.min_saving) * len(text.strip()):
                continue
            cand.kept = ranges
            cand.scores[self.name] = kept_chars / max(len(text), 1)
        return candidates
