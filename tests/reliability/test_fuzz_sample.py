"""A quick sample of bench/fuzz_ingest.py (the full run is 1,200 variants):
mutated PDFs parsed in child processes never crash, hang or run out of
memory; and the child runner really does tell those outcomes apart."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import ingest
from ingest.isolate import Limits, parse_isolated, parse_many
from tests_support import bench_module


@pytest.fixture(scope="module")
def fuzz():
    return bench_module("fuzz_ingest")


@pytest.fixture(scope="module")
def sources(fuzz, tmp_path_factory) -> list[Path]:
    return fuzz._generated(tmp_path_factory.mktemp("sources"))


def test_variants_are_deterministic(fuzz, sources, tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = fuzz.make_variants(sources, 12, 3, tmp_path / "a")
    again = fuzz.make_variants(sources, 12, 3, tmp_path / "b")
    assert [(p.read_bytes(), m) for p, _, m in first] == [(p.read_bytes(), m) for p, _, m in again]
    originals = {p.read_bytes() for p in sources}
    assert sum(p.read_bytes() not in originals for p, _, _ in first) >= 10


def test_a_fuzz_sample_never_crashes_hangs_or_runs_out_of_memory(fuzz, sources, tmp_path) -> None:
    variants = fuzz.make_variants(sources, 40, 2024, tmp_path)
    started = time.perf_counter()
    results = dict(parse_many([p for p, _, _ in variants], jobs=2, config=fuzz.fuzz_config(),
                              limits=Limits(seconds=10, memory_mb=1024)))
    assert len(results) == 40 and time.perf_counter() - started < 60
    bad = {p.name: r.message for p, r in results.items() if r.outcome not in ("ingested", "error")}
    assert bad == {}
    outcomes = {r.outcome for r in results.values()}
    assert outcomes == {"ingested", "error"}          # the sample is not trivial either way
    for path, result in results.items():
        if result.outcome == "error":
            assert result.message.startswith(path.name + ": ") and result.code != "internal"


def test_the_runner_tells_crash_hang_and_memory_apart(sources, monkeypatch) -> None:
    """Forked children inherit these stand-ins for the parser."""
    def crash(path, **kwargs):
        raise KeyError("a parser bug")

    def hang(path, **kwargs):
        while True:
            time.sleep(0.01)

    def hog(path, **kwargs):
        return [bytearray(64 * 1024 * 1024) for _ in range(64)]   # 4 GiB

    def error(path, **kwargs):
        raise ingest.errors.CorruptFile(path, "not a readable PDF (bad xref)")

    path = sources[0]
    monkeypatch.setattr(ingest, "parse_file", crash)
    result = parse_isolated(path)
    assert (result.outcome, result.code) == ("crash", "KeyError")
    assert "a parser bug" in result.message
    monkeypatch.setattr(ingest, "parse_file", hang)
    result = parse_isolated(path, limits=Limits(seconds=0.5))
    assert (result.outcome, result.code) == ("hang", "timeout") and result.seconds < 5
    monkeypatch.setattr(ingest, "parse_file", hog)
    assert parse_isolated(path, limits=Limits(memory_mb=256)).outcome == "memory"
    monkeypatch.setattr(ingest, "parse_file", error)
    result = parse_isolated(path)
    assert (result.outcome, result.code) == ("error", "corrupt")
    assert result.message == f"{path.name}: not a readable PDF (bad xref)"
    monkeypatch.undo()
    result = parse_isolated(path)
    assert result.outcome == "ingested" and result.pages == 3 and result.segments > 0
