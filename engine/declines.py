"""Answers that are no answer: the model giving up ("the sources do not
mention it") or restating the question without taking a side. The citation
step declines both (cite.py)."""
from __future__ import annotations

import re

from .sentences import answer_sentences
from .text import terms

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
