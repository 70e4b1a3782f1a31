"""The answering pipeline end to end, with a deterministic answer model:
search -> selection -> prompt -> stream -> citations -> stored turn."""
from __future__ import annotations

import threading

import pymupdf
import pytest

from engine.indexer import ingest_paths
from engine.answer_events import Stage, Token
from engine.qa import Answerer, QAConfig, answer_once, search_query_for
from engine.search import HybridSearcher
from engine.select import default_pipeline
from ingest import IngestConfig
from ingest.pdf.words import WordBoxes
from storage import conversations, open_db

from qa_support import ExtractiveBackend

FACTS = [
    "Glaciers in the northern valley advance roughly forty metres every winter.",
    "The observatory on the ridge records wind speed with three cup anemometers.",
    "Meltwater from the eastern glacier feeds the Lindqvist reservoir in early summer.",
]


def fact_pdf(path):
    doc = pymupdf.open()
    filler = ("Field notes describe the survey routes, the weather on each day and the "
              "equipment that the team carried up the slopes. ") * 6
    for number, fact in enumerate(FACTS, 1):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(56, 56, 556, 160), f"Chapter {number}",
                            fontsize=16, fontname="hebo")
        page.insert_textbox(pymupdf.Rect(56, 100, 556, 700), f"{filler}\n\n{fact}\n\n{filler}",
                            fontsize=11, fontname="helv")
    doc.save(path)
    return path


CODE = '''"""Small helpers for reservoirs."""
import math


class Reservoir:
    """A water reservoir."""

    def __init__(self, capacity):
        self.capacity = capacity

    def overflow_volume(self, inflow):
        """Water that spills over the dam once the reservoir is full."""
        return max(0.0, inflow - self.capacity)


def evaporation_loss(area, days):
    """Evaporation loss grows with surface area and the number of days."""
    return area * days * 0.004
'''


@pytest.fixture
def library(tmp_path):
    db = open_db(tmp_path / "f.db")
    pdf = fact_pdf(tmp_path / "notes.pdf")
    code = tmp_path / "reservoir.py"
    code.write_text(CODE)
    report = ingest_paths(db, [pdf, code], config=IngestConfig())
    assert all(o.status == "added" for o in report.outcomes)
    return db, pdf


def answerer(db, backend, **config):
    return Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                    config=QAConfig(**config), refine_boxes=WordBoxes())


def test_known_fact_is_answered_and_cited_on_its_page(library):
    db, pdf = library
    backend = ExtractiveBackend()
    events = list(answerer(db, backend, context_tokens=400).ask(
        "Which reservoir does meltwater from the eastern glacier feed?"))
    assert isinstance(events[0], Stage)
    assert any(isinstance(e, Token) for e in events)
    result = events[-1].result
    assert not result.declined and "Lindqvist" in result.text
    citation = result.citations[0]
    assert citation.page == 3 and "Lindqvist reservoir" in citation.quote
    # The boxes lie where pymupdf finds the cited words on that page.
    [hit] = pymupdf.open(pdf)[2].search_for("Lindqvist")
    assert any(b[0] - 2 <= hit.x0 and hit.x1 <= b[2] + 2 and b[1] - 2 <= hit.y0 <= b[3]
               for b in citation.boxes)
    # Stored with its citations.
    [turn] = conversations.get_turns(db, result.conversation_id)
    assert turn.answer == result.text and turn.citations[0].quote == citation.quote


def test_code_question_cites_the_function_lines(library):
    db, _ = library
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "How is the water that spills over the dam computed?")
    citation = result.citations[0]
    lines = CODE.splitlines()
    assert citation.page is None
    assert "overflow_volume" in "\n".join(lines[citation.line_start - 3:citation.line_end])
    assert 11 <= citation.line_start <= citation.line_end <= 13


def test_unanswerable_question_is_declined_and_cites_nothing(library):
    db, _ = library
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "What is the boiling point of liquid nitrogen at sea level?")
    assert result.declined and result.citations == []


@pytest.mark.parametrize("budget", [0, 5, 40, 90, 200, 400, 1000])
def test_budget_is_never_exceeded(library, budget):
    db, _ = library
    backend = ExtractiveBackend(n_ctx=4096)
    qa = answerer(db, backend, context_tokens=budget)
    result = answer_once(qa, "Where does meltwater from the glacier go in summer?")
    assert result.context_tokens <= budget
    assert sum(s.tokens for s in result.sources) <= budget
    assert result.prompt_tokens <= backend.n_ctx


def test_budget_follows_the_window_and_the_machine(library):
    db, _ = library
    backend = ExtractiveBackend(n_ctx=2048)
    window_only = answerer(db, backend)
    assert window_only.budget("q") == 2048 - backend.prompt_tokens(
        window_only.messages("", "q")) - QAConfig().answer_tokens
    overhead = backend.prompt_tokens(window_only.messages("", "q"))
    fast = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=100.0,
                    config=QAConfig(budget_step=0))
    assert fast.budget("q") == int(100.0 * 8.0) - overhead
    # What the model still holds from its previous answer is not read again.
    backend.cached_tokens = lambda messages: 30
    assert fast.budget("q") == int(100.0 * 8.0) - overhead + 30
    del backend.cached_tokens
    # By default the budget moves in whole steps: a speed estimate a few
    # percent off gives the same question the same sources.
    stepped = {Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                        prefill_rate=rate).budget("q") for rate in (100.0, 100.5, 101.0)}
    assert stepped == {(int(100.0 * 8.0) - overhead) // 50 * 50}
    assert Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                    prefill_rate=110.0).budget("q") == (880 - overhead) // 50 * 50
    # A very fast machine gets no more than the model reads well.
    quick = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=1000.0,
                     config=QAConfig(max_context_tokens=700))
    assert quick.budget("q") == 700
    quick.config.max_context_tokens = None
    assert quick.budget("q") == min(int(1000.0 * 8.0) - overhead, window_only.budget("q"))
    # A very slow machine still gets the minimum that can hold evidence.
    slow = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=10.0)
    assert slow.budget("q") == QAConfig().min_context_tokens



def test_one_slow_answer_does_not_cut_the_next_ones_sources(library):
    from types import SimpleNamespace

    db, _ = library
    backend = ExtractiveBackend(n_ctx=4096)
    live = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=120.0,
                    config=QAConfig(max_context_tokens=None))

    def answered_at(rate: float) -> None:
        live.observe_prefill(SimpleNamespace(prompt_tokens=900, cached_tokens=0,
                                             prefill_tokens_per_s=rate))

    steady = live.budget("q")
    answered_at(85.0)                       # the first answer after loading, say
    assert live.budget("q") == steady
    answered_at(120.0)
    answered_at(120.0)
    assert live.budget("q") == steady
    for _ in range(3):                      # the machine really is slower now
        answered_at(80.0)
    assert live.budget("q") == \
        (int(80.0 * 8.0) - backend.prompt_tokens(live.messages("", "q"))) // 50 * 50
    answered_at(500.0)                      # a short prompt read from cache: ignored
    live.observe_prefill(SimpleNamespace(prompt_tokens=900, cached_tokens=800,
                                         prefill_tokens_per_s=5000.0))
    assert live.prefill_rate() == 80.0


def test_follow_up_uses_the_previous_question(library):
    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    first = answer_once(qa, "What does the observatory on the ridge record?")
    second = answer_once(qa, "And with what does it record it?",
                         conversation_id=first.conversation_id)
    assert "observatory" in second.search_query
    assert len(conversations.get_turns(db, first.conversation_id)) == 2
    assert search_query_for("What is a reservoir's capacity?", ["old"]) == \
        "What is a reservoir's capacity?"


def test_stop_event_stops_generation(library):
    db, _ = library
    stop = threading.Event()
    stop.set()
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "Which reservoir does the eastern glacier feed?", stop_event=stop)
    assert result.status == "stopped"


def test_a_looping_answer_is_cut_off():
    from engine.qa import repeating
    loop = "The glacier is in Norway. [1] " * 3 + "The"
    assert repeating(loop)
    assert not repeating("A is b. C is d. A is b. The")


class FailingBackend(ExtractiveBackend):
    """Writes a little, then fails like a model running out of memory."""

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        pieces = super().stream(messages, max_tokens, temperature, stop_event)
        yield next(iter(pieces))
        raise RuntimeError("the model ran out of memory")


def test_the_question_is_stored_first_and_closed_when_the_answer_fails(library):
    db, _ = library
    qa = answerer(db, FailingBackend())
    events = qa.ask("Which reservoir does meltwater from the eastern glacier feed?")
    for event in events:
        if isinstance(event, Token):
            # Mid-answer, the question is already on record.
            [conv] = conversations.list_conversations(db)
            [turn] = conversations.get_turns(db, conv.id)
            assert turn.status == "answering" and turn.question.startswith("Which reservoir")
            break
    with pytest.raises(RuntimeError, match="out of memory"):
        list(events)
    [turn] = conversations.get_turns(db, conv.id)
    assert turn.status == "error" and turn.metadata["reason"] == "the model ran out of memory"

    # A consumer that goes away mid-answer (a closed browser tab) leaves it "stopped".
    events = answerer(db, ExtractiveBackend()).ask("How does the observatory record wind?",
                                                   conversation_id=conv.id)
    for event in events:
        if isinstance(event, Token):
            events.close()
            break
    turns = conversations.get_turns(db, conv.id)
    assert [t.status for t in turns] == ["error", "stopped"]
