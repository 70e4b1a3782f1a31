"""Whole-document behaviour: progress, parallel parsing, the dispatcher."""
from __future__ import annotations

import os

import pdf_fixtures as fx
import pymupdf

from ingest.pdf import document, parse_pages, parse_pdf
from ingest.progress import Progress


def test_progress_reports_pages(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(document, "PROGRESS_INTERVAL", 0.0)  # report every page
    seen: list[Progress] = []
    path = fx.simple(tmp_path / "p.pdf", pages=4)
    parse_pdf(path, progress=seen.append)
    assert [p.done for p in seen] == [0, 1, 2, 3, 4]
    assert {(p.stage, p.total, p.unit, p.item) for p in seen} == {("parse", 4, "pages", "p.pdf")}


def test_progress_is_throttled(tmp_path) -> None:
    seen: list[Progress] = []
    parse_pdf(fx.simple(tmp_path / "p.pdf", pages=6), progress=seen.append)
    assert seen[0].done == 0 and seen[-1].done == 6 and len(seen) <= 7


def _long_pdf(tmp_path):
    """21 pages: the headings fixture repeated, with its outline."""
    src = pymupdf.open(fx.headings(tmp_path / "h.pdf"))
    big = pymupdf.open()
    for _ in range(7):
        big.insert_pdf(src)
    big.set_toc(src.get_toc())
    big.save(tmp_path / "big.pdf")
    return tmp_path / "big.pdf"


def test_parallel_parse_matches_serial(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(document, "RANGE_PAGES", 8)
    # other tests may leave idle threads behind, which makes the parser stay
    # serial; force the pool so that this compares parallel with serial
    monkeypatch.setattr(document, "_can_fork", lambda: True)
    pool_tasks = []
    real = document.ProcessPoolExecutor.submit

    def counting_submit(self, *args, **kwargs):
        pool_tasks.append(args[-1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(document.ProcessPoolExecutor, "submit", counting_submit)
    path = _long_pdf(tmp_path)
    serial = parse_pdf(path, workers=1)
    parallel = parse_pdf(path, workers=2)
    assert len(serial.pages) == 21 and len(pool_tasks) == 3
    assert parallel.pages == serial.pages
    assert parallel.segments == serial.segments
    assert parallel.warnings == serial.warnings


def _die(*args):
    os._exit(3)  # a worker killed mid-task (e.g. out of memory)


def test_broken_pool_falls_back_to_serial(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(document, "RANGE_PAGES", 8)
    monkeypatch.setattr(document, "_can_fork", lambda: True)
    path = _long_pdf(tmp_path)
    serial = parse_pdf(path, workers=1)
    monkeypatch.setattr(document, "_parse_range", _die)
    fallback = parse_pdf(path, workers=2)
    assert fallback.pages == serial.pages and fallback.segments == serial.segments


def test_parse_pages_selects_pages(tmp_path) -> None:
    results, segments = parse_pages(fx.simple(tmp_path / "p.pdf", pages=5), [1, 3])
    assert [r.info.number for r in results] == [2, 4]
    assert {s.page for s in segments} == {2, 4}


def test_parse_file_dispatches_pdf(tmp_path, monkeypatch) -> None:
    import sys
    import types

    import ingest

    # ingest.detect belongs to another part of the project; stand in for it
    fake = types.ModuleType("ingest.detect")
    fake.detect_kind = lambda path: "pdf"
    monkeypatch.setitem(sys.modules, "ingest.detect", fake)
    doc = ingest.parse_file(fx.simple(tmp_path / "p.pdf"))
    assert doc.kind == "pdf" and doc.segments
