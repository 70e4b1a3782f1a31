"""How much a span's words support a claim: weighted lexical recall (a
word at a time, numbers and the claim's new words counting double) and
numbers copied exactly. The citation step blends it with embedding
similarity (cite.py)."""
from __future__ import annotations

from .text import is_number


def term_recall(sentence_terms: list[str], span_terms: frozenset[str],
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


def word_recall(groups: list[list[str]], span_terms: frozenset[str],
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


def holds_numbers(numbers: set[str], asked: frozenset[str],
                  span_terms: frozenset[str]) -> bool:
    """`carries_numbers` with the claim's new numbers worked out already."""
    return bool(numbers) and numbers <= span_terms and bool((asked - numbers) & span_terms)


def carries_numbers(claim_terms: set[str], asked: frozenset[str],
                    span_terms: frozenset[str]) -> bool:
    """The span holds every number of three characters or more that the
    claim adds to the question, beside a word of the question. A number
    copied exactly is support in itself where the embedding says little: a
    report row "2 BIN2 BS 665.34296 .08000 ." for "the optimal activity
    for the column BIN2 is shown as 665.34296" scored 0.417 against the
    0.42 threshold, and that right answer was withheld (dev-18)."""
    return holds_numbers(new_numbers(claim_terms, asked), asked, span_terms)
