"""Bad questions get a clear behaviour, never a traceback: empty and
oversized questions a specific error, control characters stripped, other
languages and query syntax answered or declined, a context budget smaller
than one segment answered from a cut-down segment or declined with the
reason, and a model that fails to load or to answer a clear `folio ask`
error. Orchestration runs on the deterministic ExtractiveBackend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
import pytest
from click.testing import CliRunner

from app.cli import cli
from engine.backends import ModelError
from engine.indexer import ingest_paths
from engine.prompts import QuestionError
from engine.qa import Answerer, QAConfig, answer_once
from engine.search import HybridSearcher
from engine.select import default_pipeline
from ingest import IngestConfig
from storage import conversations, open_db

from qa_support import ExtractiveBackend

FACT = "Meltwater from the eastern glacier feeds the Lindqvist reservoir in early summer."
QUESTION = "Which reservoir does meltwater from the eastern glacier feed?"
FILLER = ("Field notes describe the survey routes, the weather on each day and the "
          "equipment that the team carried up the slopes. ") * 6
GERMAN = ("# Notizen\n\nDer Gletscher im Norden wächst jeden Winter um vierzig Meter, "
          "sagt die Wetterstation am Grat.\n")


@pytest.fixture
def library(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(56, 56, 556, 760), f"{FILLER}\n\n{FACT}\n\n{FILLER}",
                        fontsize=10, fontname="helv")
    doc.save(tmp_path / "notes.pdf")
    (tmp_path / "notizen.md").write_text(GERMAN, encoding="utf-8")
    db = open_db(tmp_path / "f.db")
    report = ingest_paths(db, [tmp_path / "notes.pdf", tmp_path / "notizen.md"],
                          config=IngestConfig(ocr=False))
    assert [o.status for o in report.outcomes] == ["added", "added"]
    return db


def answerer(db, backend=None, **config) -> Answerer:
    return Answerer(db, backend or ExtractiveBackend(n_ctx=4096), HybridSearcher(db),
                    default_pipeline(), config=QAConfig(**config))


def turns(db) -> int:
    return sum(len(conversations.get_turns(db, c.id))
               for c in conversations.list_conversations(db))


@pytest.mark.parametrize("question", ["", "   \n\t ", "\x00\x07\x1b\x7f"])
def test_empty_questions_are_refused_and_nothing_is_stored(library, question) -> None:
    with pytest.raises(QuestionError, match="^the question is empty$"):
        answer_once(answerer(library, context_tokens=400), question)
    assert turns(library) == 0


def test_a_100_kb_question_is_refused_with_its_size(library) -> None:
    question = ("Which reservoir does the meltwater feed? " * 2600)[:102_400]
    with pytest.raises(QuestionError) as err:
        answer_once(answerer(library, context_tokens=400), question)
    assert str(err.value).startswith(f"the question is {len(question.strip()):,} characters "
                                     "long; the limit is 4,000")
    assert turns(library) == 0


def test_a_question_too_long_for_the_models_window(library) -> None:
    question = "Which reservoir does the meltwater feed? " * 90     # ~3,700 characters
    qa = answerer(library, ExtractiveBackend(n_ctx=512), context_tokens=400)
    with pytest.raises(QuestionError, match=r"too long for the model: .* window holds 512$"):
        answer_once(qa, question)


def test_control_characters_are_stripped(library) -> None:
    noisy = "\x1b[1mWhich reservoir\x00 does meltwater from the\x08 eastern\r glacier feed?\x07\ud800"
    result = answer_once(answerer(library, context_tokens=400), noisy)
    clean = answer_once(answerer(library, context_tokens=400), QUESTION)
    assert not result.declined and "Lindqvist" in result.text
    assert result.text == clean.text
    stored = conversations.get_turns(library, result.conversation_id)[0].question
    assert stored == result.question
    assert not any(ord(c) < 32 and c not in "\n\t" or 0xD800 <= ord(c) <= 0xDFFF for c in stored)
    assert "Which reservoir  does meltwater" in stored     # a NUL becomes a space


@pytest.mark.parametrize("question", [
    "この文書は何について書かれていますか？",
    "Какой резервуар питает талая вода?",
    'NEAR("glacier" AND) OR * -- "; DROP TABLE segments; {}[]^~:',
])
def test_other_languages_and_query_syntax_are_declined_not_errors(library, question) -> None:
    result = answer_once(answerer(library, context_tokens=400), question)
    assert result.question == question.strip() and result.declined and result.reason
    assert conversations.get_turns(library, result.conversation_id)[0].question == result.question


def test_a_question_in_the_documents_language_is_answered(library) -> None:
    result = answer_once(answerer(library, context_tokens=400),
                         "Um wie viele Meter wächst der Gletscher im Norden jeden Winter?")
    assert not result.declined and "vierzig Meter" in result.text
    assert result.citations and result.citations[0].quote.startswith("Der Gletscher")


def test_a_budget_smaller_than_one_segment_answers_from_a_cut_segment(library) -> None:
    qa = answerer(library, context_tokens=60)
    result = answer_once(qa, QUESTION)
    [source] = result.sources
    segment_tokens = ExtractiveBackend().count_tokens(FILLER + FACT)
    assert result.context_tokens <= 60 < segment_tokens
    assert FACT in source.text and len(source.text) < len(FILLER)
    assert not result.declined and "Lindqvist" in result.text and result.citations


def test_a_budget_too_small_for_any_sentence_says_so(library) -> None:
    result = answer_once(answerer(library, context_tokens=8), QUESTION)
    assert result.declined and result.sources == [] and result.citations == []
    assert result.reason.startswith("no passage fits the context budget of 8 tokens (")
    assert result.reason.endswith("found); allow more context tokens")


# -- `folio ask` with a model that cannot load or fails while answering -------

def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def test_ask_with_a_model_that_fails_to_load(tmp_path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"this is not a GGUF model\n" * 100)
    result = run(tmp_path / "home", "ask", QUESTION, "--model", str(bogus))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "model.gguf" in result.output
    assert "Traceback" not in result.output


class BrokenBackend(ExtractiveBackend):
    """Loads, then fails while writing (a GPU that went away, say)."""

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        yield "The "
        raise ModelError("the model stopped: llama_decode returned -3 (out of memory)")


class TinyEmbedder:
    """Stands in for the embedding model (loading it takes seconds): the
    question's vector only ranks sources here."""

    def __init__(self, config=None):
        pass

    def embed(self, texts):
        rows = np.array([[len(t) % 7 + 1.0, t.count(" ") + 1.0, 1.0] for t in texts])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_ask_with_a_model_that_fails_mid_answer(tmp_path, monkeypatch) -> None:
    import app.assistant

    monkeypatch.setattr(app.assistant, "Embedder", TinyEmbedder)

    notes = tmp_path / "notes.md"
    notes.write_text(f"# Notes\n\n{FACT}\n")
    home = tmp_path / "home"
    assert run(home, "ingest", str(notes), "--no-embed").exit_code == 0
    monkeypatch.setattr(app.assistant, "load_answer_backend",
                        lambda settings, model=None: BrokenBackend(n_ctx=4096))
    result = run(home, "ask", QUESTION, "--context", "400")
    assert result.exit_code == 1
    assert "Error: the model stopped: llama_decode returned -3 (out of memory)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("question,message", [
    ("\x00 \x07", "Error: the question is empty"),
    ("why? " * 20_000, "Error: the question is 99,999 characters long; the limit is 4,000"),
])
def test_ask_refuses_bad_questions_before_loading_a_model(tmp_path, monkeypatch, question,
                                                          message) -> None:
    import app.assistant

    def never(*args, **kwargs):
        raise AssertionError("the model must not load for a question that is refused")

    monkeypatch.setattr(app.assistant, "load_answer_backend", never)
    result = run(tmp_path / "home", "ask", question)
    assert result.exit_code == 1 and result.output.startswith(message)
