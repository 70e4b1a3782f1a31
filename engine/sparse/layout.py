"""A document as the sparse engine reads it: one token sequence, and where
each stored segment lies in it.

The sequence is `preamble + segment + separator + segment + ...`: the
preamble (the chat template's system header and instructions) makes the
first block of the first document a natural attention sink, and knowing
each segment's token range lets retrieval-first answers attend only to the
segments the selector chose, and turns attention mass back into segments
for citations.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

SEPARATOR = "\n\n"
LAYOUT_VERSION = 1      # bump when the way documents are laid out changes


@dataclass(frozen=True)
class DocumentLayout:
    tokens: list[int]
    preamble: int                                   # tokens before the first segment
    segments: dict[int, tuple[int, int]]            # segment id -> [start, end) in tokens

    def ranges(self, segment_ids: Iterable[int]) -> list[tuple[int, int]]:
        """Token ranges of the given segments (unknown ids are skipped)."""
        return sorted(self.segments[s] for s in segment_ids if s in self.segments)

    def body(self) -> list[tuple[int, int]]:
        """Everything after the preamble: the whole-document candidates."""
        return [(self.preamble, len(self.tokens))] if len(self.tokens) > self.preamble else []

    def segment_mass(self, token_mass: Sequence[float]) -> dict[int, float]:
        """Attention mass per segment from mass per token."""
        return {sid: float(sum(token_mass[a:b])) for sid, (a, b) in self.segments.items()}

    def pages(self, page_tokens: int) -> list["DocumentLayout"]:
        """The document cut at segment starts into pages of at most
        `page_tokens` tokens after the preamble (a longer segment is a page of
        its own), each led by the preamble. Retrieval-first reading builds
        only the caches of the pages its sources are on: a page's keys see
        the instructions and the page, not the whole document before it."""
        if page_tokens <= 0:
            raise ValueError(f"page_tokens must be positive, not {page_tokens}")
        starts = sorted(a for a, _ in self.segments.values())
        cuts = [self.preamble]
        for start, following in zip(starts, starts[1:] + [len(self.tokens)]):
            # the segment with its separator would end the page past the limit
            if start > cuts[-1] and following - cuts[-1] > page_tokens:
                cuts.append(start)
        cuts.append(len(self.tokens))
        head = self.tokens[:self.preamble]
        out = []
        for a, b in zip(cuts, cuts[1:]):
            shift = self.preamble - a
            segs = {sid: (s + shift, e + shift) for sid, (s, e) in self.segments.items()
                    if a <= s < b}
            out.append(DocumentLayout(head + self.tokens[a:b], self.preamble, segs))
        return out

    def to_metadata(self) -> dict:
        return {"preamble": self.preamble, "layout_version": LAYOUT_VERSION,
                "segments": [[sid, a, b] for sid, (a, b) in self.segments.items()]}


def aligned(preamble: list[int], block: int, pad: int) -> list[int]:
    """The preamble padded with `pad` tokens to whole blocks, so the sink
    blocks hold the instructions only and the document starts on a block
    of its own (otherwise the always-attended sink drags the document's
    first words into every answer)."""
    return list(preamble) + [pad] * (-len(preamble) % block)


def layout_document(tokenize: Callable[[str], list[int]], preamble: list[int],
                    segments: Iterable[tuple[int, str]], *,
                    max_tokens: int | None = None) -> DocumentLayout:
    """Tokenize segment by segment (not the joined text) so every range is
    exact; `max_tokens` stops before a segment that would not fit."""
    tokens = list(preamble)
    sep = tokenize(SEPARATOR)
    ranges: dict[int, tuple[int, int]] = {}
    for sid, text in segments:
        ids = tokenize(text)
        if not ids:
            continue
        if max_tokens is not None and len(tokens) + len(ids) > max_tokens:
            break
        ranges[sid] = (len(tokens), len(tokens) + len(ids))
        tokens.extend(ids)
        tokens.extend(sep)
    return DocumentLayout(tokens, len(preamble), ranges)


def layout_key(document_sha256: str, preamble: list[int], max_tokens: int | None) -> str:
    """Cache folder name: the document, the preamble and the layout rules, so
    a changed prompt or limit never reuses a stale cache."""
    h = hashlib.sha256(f"{LAYOUT_VERSION}:{max_tokens}:{preamble}".encode()).hexdigest()
    return f"{document_sha256[:16]}-{h[:8]}"
