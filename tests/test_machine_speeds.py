"""Prefill speeds outlive the process: the next run's budget starts from the
speeds of the last answers, not from the first measurement ever taken."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from app.machine_speeds import StoredPrefillSpeeds, stored_prefill_rate
from engine.qa import Answerer, QAConfig
from engine.search import HybridSearcher
from engine.select import default_pipeline

from qa_support import ExtractiveBackend
from test_qa import library  # noqa: F401 - the fixture


def never() -> float:
    raise AssertionError("a kept speed must not be measured again")


def answered_at(answerer: Answerer, rate: float) -> None:
    answerer.observe_prefill(SimpleNamespace(prompt_tokens=900, cached_tokens=0,
                                             prefill_tokens_per_s=rate))


def test_the_speeds_of_earlier_answers_set_the_next_runs_budget(library, tmp_path):
    db, _ = library
    backend = ExtractiveBackend(n_ctx=4096)
    path = tmp_path / "machine.json"

    def answerer(measure) -> Answerer:
        return Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                        config=QAConfig(max_context_tokens=None, budget_step=0),
                        rate_memory=StoredPrefillSpeeds(path, "qwen:cpu", measure))

    first = answerer(lambda: 120.0)
    overhead = backend.prompt_tokens(first.messages("", "q"))
    assert first.budget("q") == int(120.0 * 8.0) - overhead
    assert json.loads(path.read_text()) == {"qwen:cpu": [120.0]}     # measured once, kept
    answered_at(first, 80.0)
    assert first.budget("q") == int(120.0 * 8.0) - overhead        # one reading moves nothing
    # a one-question run: its single reading is kept for the next one
    assert answerer(never).budget("q") == int(120.0 * 8.0) - overhead
    for _ in range(2):
        answered_at(first, 80.0)
    assert first.budget("q") == int(80.0 * 8.0) - overhead
    assert json.loads(path.read_text()) == {"qwen:cpu": [120.0, 80.0, 80.0, 80.0]}
    # the machine really is slower now: the next run knows it from the start
    assert answerer(never).budget("q") == int(80.0 * 8.0) - overhead
    for _ in range(5):                       # only the last few readings are kept
        answered_at(first, 100.0)
    assert json.loads(path.read_text())["qwen:cpu"] == [100.0] * QAConfig().prefill_window


def test_a_single_kept_number_is_read_as_one_reading(tmp_path):
    path = tmp_path / "machine.json"
    path.write_text(json.dumps({"qwen:cpu": 114.5, "other": [1.0, 2.0, 3.0]}))
    speeds = StoredPrefillSpeeds(path, "qwen:cpu", never)
    assert speeds.load() == [114.5]
    assert stored_prefill_rate(path, "qwen:cpu") == 114.5
    assert stored_prefill_rate(path, "other") == 2.0
    assert stored_prefill_rate(path, "missing") is None
    speeds.save([114.5, 90.0])
    assert json.loads(path.read_text()) == {"qwen:cpu": [114.5, 90.0], "other": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"qwen:cpu": "fast"}'])
def test_a_damaged_file_is_measured_again(tmp_path, content):
    path = tmp_path / "machine.json"
    path.write_text(content)
    assert StoredPrefillSpeeds(path, "qwen:cpu", lambda: 99.0).load() == [99.0]
    assert json.loads(path.read_text())["qwen:cpu"] == [99.0]


def test_a_data_dir_that_cannot_be_written_costs_only_the_memory(tmp_path, caplog):
    blocked = tmp_path / "home"
    blocked.write_text("a file where the data dir should be")
    speeds = StoredPrefillSpeeds(blocked / "machine.json", "qwen:cpu", lambda: 99.0)
    assert speeds.load() == [99.0]                  # measured, used, not kept
    assert "could not keep the prefill speeds" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
