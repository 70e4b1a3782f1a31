"""Two ingestions and a stream of questions at once, through the Gradio API
of a real server: a short run of `bench/load.py` (the long run and its
numbers are in bench/RESULTS.md)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def load_module():
    spec = importlib.util.spec_from_file_location("folio_bench_load", LOAD)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_ingestion_and_questions_at_once_lose_nothing():
    from engine.backends.errors import ModelNotFoundError
    from engine.model_files import tiny_model_path

    try:
        model = tiny_model_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    bench = load_module()
    result = bench.run_load(seconds=12, clients=2, model=model)
    summary = bench.table(result)
    counts = {row["endpoint"]: row["requests"] for row in result.rows()}
    # Every client really ran at the same time as the others.
    assert counts.get("/ingest", 0) >= 4 and counts.get("/ask", 0) >= 2 \
        and counts.get("/list", 0) >= 4, summary
    assert len(set(result.ingested)) == len(result.ingested) >= 4, summary
    assert not result.locked, result.locked
    assert not result.missing and not result.not_ready, summary
    assert not result.wrong_answers, result.wrong_answers
    assert [c.error for c in result.calls if not c.ok] == []
    assert not result.server_errors and result.passed, summary
