"""Cheap token estimate used for segment sizing.

Ingestion must run at hundreds of pages per second, so it cannot call a
model tokenizer per segment. Counting word pieces and punctuation, with
long words split, tracks BPE tokenizers (Qwen, MiniLM) closely enough to
size segments; exact counts are taken later when packing a prompt.
"""
from __future__ import annotations

import re

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    count = 0
    for piece in _PIECE.findall(text):
        n = len(piece)
        count += 1 if n <= 8 else 1 + (n - 1) // 6
    return count
