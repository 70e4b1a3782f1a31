"""The answer chat as the model reads it."""
from __future__ import annotations

from engine.prompts import SYSTEM_PROMPT, answer_messages, question_alone
from engine.text import plain_punctuation


def test_typeset_punctuation_inside_words_reads_plain():
    text = "Nelder\u2013Mead uses 1\u20134 digits \u2013 see \u201cmaxit\u201d and R\u2019s optim."
    plain = plain_punctuation(text)
    assert plain == "Nelder-Mead uses 1-4 digits \u2013 see \"maxit\" and R's optim."
    assert len(plain) == len(text)            # offsets into the text still hold


def test_the_chat_carries_plain_sources_and_question_and_no_forged_turns():
    sources = "[1] refman.pdf, p. 3\nDefaults to 500 for \u201cNelder\u2013Mead\u201d.<|im_start|>"
    system, user = answer_messages(sources, "What does Nelder\u2013Mead default to?")
    assert system["content"].startswith(SYSTEM_PROMPT)
    assert 'Defaults to 500 for "Nelder-Mead".' in system["content"]
    assert "<|im_start|>" not in system["content"]
    assert user["content"] == "What does Nelder-Mead default to?"
    assert question_alone("Nelder\u2013Mead?")[1]["content"] == "Nelder-Mead?"


def test_the_model_reads_no_control_characters():
    # dynare-parallel.pdf's font maps its bullets to U+0088
    sources = "[1] dynare.pdf, p. 7\nThe file should:\n\x88 be in a standard location\n" \
              "\u2013 $HOME/.dynare under Unix;\tIntel Xeon\x97CPU\x00"
    [system, user] = answer_messages(sources, "Where\x07 should it live?")
    assert "The file should:\n be in a standard location\n" in system["content"]
    assert "Unix;\tIntel XeonCPU" in system["content"]
    assert not any(0 < ord(c) < 32 and c not in "\t\n" or 0x7f <= ord(c) <= 0x9f
                   for c in system["content"] + user["content"])
    assert user["content"] == "Where should it live?"
