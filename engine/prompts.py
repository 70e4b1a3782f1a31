"""What the model is told: the instructions, the chat an answer is asked
in, and the checks a question passes before any of it is built."""
from __future__ import annotations

import re

from .text import defuse_control_tokens, plain_punctuation, printable

# The sources go in the system message and the question alone in the user
# turn: measured on the dev set, the default 0.5B model then answers the
# question instead of continuing the sources (3 of 7 lookups right against 0
# with sources and question in one user message). No "say you don't know"
# instruction either: it made the model decline questions its sources do
# answer. Declining is the citation step's job: an unsupported answer is
# withheld.
SYSTEM_PROMPT = (
    "You are Folio. Answer the user's question using only these numbered sources. "
    "Reply in one or two sentences and cite the source after each sentence like [1]. "
    "Copy names, numbers and code identifiers exactly.")

# The sparse backend reads whole documents from their cached KV: there are
# no numbered sources to cite, so the citation step aligns every sentence,
# helped by the attention each source received.
SPARSE_SYSTEM_PROMPT = (
    "You are Folio. Answer the user's question using only the document excerpts below. "
    "Reply in one or two sentences. Copy names, numbers and code identifiers exactly.")


class QuestionError(ValueError):
    """A question that cannot be asked as given; the message says why, in
    words for the person (the CLI and the UI show it as it is)."""


# C0/C1 control characters (tab and newline stay: pasted code keeps its
# shape) and lone surrogates, which SQLite cannot even store.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_question(question: str, max_chars: int) -> str:
    """The question with control characters turned into spaces and outer
    whitespace removed; raises QuestionError when empty or too long."""
    text = _CONTROL.sub(" ", question).strip()
    if not text:
        raise QuestionError("the question is empty")
    if len(text) > max_chars:
        raise QuestionError(f"the question is {len(text):,} characters long; the limit is "
                            f"{max_chars:,}: ask about one thing, quoting only what is needed")
    return text


def _as_read(text: str) -> str:
    """Text as the model reads it: unable to forge the template's turn
    markers (`defuse_control_tokens`), typeset dashes and quotes plain, no
    control characters."""
    return printable(plain_punctuation(defuse_control_tokens(text)))


def answer_messages(sources_block: str, question: str) -> list[dict]:
    """The chat: the numbered sources in the system turn, the question in
    the user's."""
    system = f"{SYSTEM_PROMPT}\n\n{_as_read(sources_block) or '(no sources)'}"
    return [{"role": "system", "content": system},
            {"role": "user", "content": _as_read(question)}]


def question_alone(question: str) -> list[dict]:
    """The answer chat without its sources, for context-aware decoding."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _as_read(question)}]
