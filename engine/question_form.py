"""What a question asks for, from its wording: several steps answer a
question about where code does something differently from one about what
it does (selection keeps docstrings for the first, the answer names the
place)."""
from __future__ import annotations

import re

# "Where does ...", "In which function ...", "Which part of difflib ...",
# "What function handles ..."
_ASKS_WHERE = re.compile(
    r"^\W*(?:where\b|(?:in\s+)?(?:which|what)\s+(?:part|function|method|class|module|"
    r"file|code|routine)s?\b)", re.I)


def asks_where(question: str) -> bool:
    """The question asks for a place, not an explanation."""
    return bool(_ASKS_WHERE.search(question))
