"""An answer that only restates the question is continued, not declined
outright: the model's sentence stopped where the answer begins."""
from __future__ import annotations

from engine.answer_events import Done, Revise, Stage, Token
from engine.cite import DECLINE_TEXT, RESTATED

from qa_support import ExtractiveBackend
from test_qa import answerer, library  # noqa: F401 - the fixture

QUESTION = "Which reservoir does meltwater from the eastern glacier feed in early summer?"
RESTATEMENT = "Meltwater from the eastern glacier feeds a reservoir in early summer [1]."


class RestatingBackend(ExtractiveBackend):
    """Answers by restating the question; continues with a scripted text."""

    def __init__(self, continuation: str | None):
        super().__init__()
        self.continuation = continuation
        self.replies: list[str] = []

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        self.prompts.append(messages[0]["content"])
        yield from (word + " " for word in RESTATEMENT.split(" "))

    def continue_reply(self, messages, reply, max_tokens, stop_event=None, contrast=None):
        self.replies.append(reply)
        if self.continuation is None:
            return None
        return iter(" " + word for word in self.continuation.split(" "))   # as tokens read


def run(db, backend, **config):
    events = list(answerer(db, backend, **config).ask(QUESTION))
    return events, events[-1].result


def test_a_restatement_is_continued_and_the_continuation_cited(library):
    db, _ = library
    backend = RestatingBackend("namely the Lindqvist reservoir.")
    events, result = run(db, backend)
    assert backend.replies == [RESTATEMENT[:-1] + ","]     # the period became a comma
    assert not result.declined
    assert result.text == RESTATEMENT[:-1] + ", namely the Lindqvist reservoir."
    assert result.raw_text == result.text
    assert result.continued_from == RESTATEMENT
    assert {c.page for c in result.citations} == {3}        # the meltwater fact's page
    assert any("Lindqvist" in c.quote for c in result.citations)
    # the streamed text is revised to the reply, then continued
    names = [e.name for e in events if isinstance(e, Stage)]
    assert "continuing" in names
    revise = next(i for i, e in enumerate(events) if isinstance(e, Revise))
    after = "".join(e.text for e in events[revise + 1:] if isinstance(e, Token))
    assert (events[revise].text + after).strip() == result.text


def test_only_the_restated_sentence_is_completed(library):
    db, _ = library
    backend = RestatingBackend("namely the Lindqvist reservoir. It holds forty million "
                               "cubic metres of water.")
    _, result = run(db, backend)
    assert result.text.endswith("the Lindqvist reservoir.")
    assert "forty" not in result.text


def test_an_unsupported_continuation_leaves_the_decline(library):
    db, _ = library
    backend = RestatingBackend("which hikers visit on foot from the village of Ormsund.")
    _, result = run(db, backend)
    assert result.declined
    assert result.text == DECLINE_TEXT
    assert result.reason == RESTATED
    assert result.raw_text == RESTATEMENT and result.continued_from == ""
    assert result.citations == []


def test_no_continuation_where_the_backend_cannot_or_it_is_switched_off(library):
    db, _ = library
    for backend, config in [(RestatingBackend(None), {}),
                            (RestatingBackend("namely the Lindqvist reservoir."),
                             {"go_on": False})]:
        events, result = run(db, backend, **config)
        assert result.declined and result.reason == RESTATED
        assert not any(isinstance(e, Revise) for e in events)
    assert backend.replies == []                           # switched off: never asked


def test_an_answer_that_says_something_is_not_continued(library):
    db, _ = library
    backend = ExtractiveBackend()
    calls = []
    backend.continue_reply = lambda *a, **k: calls.append(a) or None
    events = list(answerer(db, backend).ask(QUESTION))
    assert isinstance(events[-1], Done) and not events[-1].result.declined
    assert calls == []


def test_the_cli_shows_the_answer_again_with_its_continuation(tmp_path, monkeypatch):
    """What was printed cannot be taken back: the continued answer starts on
    a new line, and its citation follows."""
    import numpy as np
    from click.testing import CliRunner

    import app.assistant
    from app.cli import cli

    class LengthEmbedder:           # the embedding model takes seconds to load
        def __init__(self, config=None):
            pass

        def embed(self, texts):
            rows = np.array([[len(t) % 7 + 1.0, t.count(" ") + 1.0, 1.0] for t in texts])
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    monkeypatch.setattr(app.assistant, "Embedder", LengthEmbedder)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nMeltwater from the eastern glacier feeds the Lindqvist "
                     "reservoir in early summer.\n")
    home = tmp_path / "home"
    runner = CliRunner()
    ingested = runner.invoke(cli, ["--home", str(home), "ingest", str(notes), "--no-embed"])
    assert ingested.exit_code == 0
    monkeypatch.setattr(app.assistant, "load_answer_backend",
                        lambda settings, model=None: RestatingBackend(
                            "namely the Lindqvist reservoir."))
    result = runner.invoke(cli, ["--home", str(home), "ask", QUESTION, "--context", "400"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].strip() == RESTATEMENT
    assert lines[1] == RESTATEMENT[:-1] + ", namely the Lindqvist reservoir."
    assert any(line.startswith("[1] notes.md") and "Lindqvist" in line for line in lines)


def test_the_browser_and_the_api_show_the_revised_answer():
    """The live answer is replaced by the revision, not appended to it."""
    from types import SimpleNamespace

    from app.handlers import Handlers

    events = [Stage("reading"), Token("The file should "), Token("live on Unix."),
              Stage("continuing", RESTATED), Revise("The file should live on Unix,"),
              Token(" under $HOME/.dynare.")]
    rt = SimpleNamespace(answers=SimpleNamespace(ask=lambda question, **kw: iter(events)))
    handlers = Handlers(rt)
    api = [update["answer"] for update in handlers.api_ask("Where?", None, None)]
    assert api == ["The file should ", "The file should live on Unix.",
                   "The file should live on Unix,",
                   "The file should live on Unix, under $HOME/.dynare."]
    pages = [page for page, _ in handlers.ask("Where?", None, None, "s")]
    revised = next(page for page in pages if "live on Unix," in page)
    assert "live on Unix.The file" not in revised
    assert all("live on Unix.The file" not in page for page in pages)
