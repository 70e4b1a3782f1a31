"""Follow-up questions into standalone search queries.

"And what is its default?" finds nothing on its own: search needs the
subject of the earlier turns. The answer model rewrites such a question
into one that stands alone ("What is the default of the --depth option?");
a rewrite that comes back empty, rambling, or without a word of what it
should resolve to is not trusted, and the earlier question's words are
borrowed instead, which always keeps the subject.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .text import defuse_control_tokens, terms

# Words by which a question points back at an earlier turn.
FOLLOW_UP_WORDS = frozenset("it its it's this that these those they them their there he she "
                            "his her same above previous former latter one ones".split())

REWRITE_SYSTEM = (
    "You rewrite the user's last question so that it can be understood without the "
    "conversation: replace words like it, its, this, that and they with the thing they "
    "refer to in the earlier questions. Reply with the rewritten question only, on one line.")


@dataclass(frozen=True)
class FollowUp:
    query: str          # what search is given
    how: str            # "as asked", "rewritten" or "borrowed"


def leans_on_history(question: str, history: list[str]) -> bool:
    """Whether the question points back (a pronoun, or under three content terms)."""
    if not history:
        return False
    words = question.lower().replace("?", " ").split()
    return (any(w.strip(".,;:!'\"") in FOLLOW_UP_WORDS for w in words)
            or len(terms(question)) < 3)


def borrowed_query(question: str, history: list[str]) -> str:
    """The previous question's words in front of the follow-up's."""
    return f"{history[-1]} {question}" if history else question


def rewrite_messages(question: str, history: list[str]) -> list[dict]:
    earlier = "\n".join(f"- {defuse_control_tokens(h)}" for h in history)
    return [{"role": "system", "content": REWRITE_SYSTEM},
            {"role": "user", "content": f"Earlier questions:\n{earlier}\n\n"
                                        f"Last question: {defuse_control_tokens(question)}"}]


def clean_rewrite(text: str, question: str, history: list[str], *,
                  max_words: int = 40) -> str | None:
    """The model's rewrite when it can be trusted, else None: one line,
    a handful of words, new terms from the earlier questions (it resolved
    the reference) and no fewer of the follow-up's own terms than half."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:rewritten question|question|standalone question)\s*:\s*", "", line,
                  flags=re.IGNORECASE).strip().strip('"\'`').strip()
    words = line.split()
    if not 2 <= len(words) <= max_words:
        return None
    got, own = set(terms(line)), set(terms(question))
    earlier = set(terms(" ".join(history))) - own
    if not got & earlier:
        return None                         # the reference was not resolved
    if own and len(got & own) * 2 < len(own):
        return None                         # the follow-up's own subject was lost
    return line


def search_query(question: str, history: list[str], backend=None, *, max_tokens: int = 48,
                 stop_event: threading.Event | None = None) -> FollowUp:
    """The search query for a question asked after `history` (earlier
    questions, oldest first). With a backend, a follow-up is rewritten by
    the model; without one, or when the rewrite is not trusted, the
    previous question's words are borrowed."""
    if not leans_on_history(question, history):
        return FollowUp(question, "as asked")
    if backend is not None:
        text = "".join(backend.stream(rewrite_messages(question, history), max_tokens,
                                      temperature=0.0, stop_event=stop_event))
        rewritten = clean_rewrite(text, question, history)
        if rewritten:
            return FollowUp(rewritten, "rewritten")
    return FollowUp(borrowed_query(question, history), "borrowed")
